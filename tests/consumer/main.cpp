// mtl_consumer RUN_DIR RGB DEPTH DEPTH_SCALE: predicts one RGB-D frame with <mtl/predictor.h> and
// checks the result (the image's size, class ids in range, depth finite in (0, max_depth]).
// Prints one line and exits 0 when it holds, 1 otherwise.
#include <mtl/predictor.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: mtl_consumer RUN_DIR RGB DEPTH DEPTH_SCALE\n");
    return 2;
  }
  try {
    const mtl::Predictor predictor = mtl::Predictor::from_run(argv[1]);
    const mtl::RgbBuffer rgb = mtl::read_rgb(argv[2]);
    const mtl::DepthBuffer depth = mtl::read_depth(argv[3]);
    const mtl::Prediction p = predictor.predict(rgb.view(), depth.view(std::stod(argv[4])));

    const size_t pixels = static_cast<size_t>(rgb.width) * static_cast<size_t>(rgb.height);
    bool ok = p.width == rgb.width && p.height == rgb.height && p.labels.size() == pixels && p.depth.size() == pixels;
    std::vector<int> seen(static_cast<size_t>(predictor.num_classes()), 0);
    for (int32_t c : p.labels) {
      ok = ok && c >= 0 && c < predictor.num_classes();
      if (c >= 0 && c < predictor.num_classes()) seen[static_cast<size_t>(c)] = 1;
    }
    float lo = INFINITY, hi = -INFINITY;
    for (float d : p.depth) {
      ok = ok && std::isfinite(d) && d > 0 && d <= predictor.max_depth();
      lo = std::fmin(lo, d);
      hi = std::fmax(hi, d);
    }
    int classes = 0;
    for (int s : seen) classes += s;
    std::printf("mtl_consumer: %dx%d, %d of %d classes present, depth %.3f to %.3f m (max_depth %.1f): %s\n", p.width,
                p.height, classes, predictor.num_classes(), lo, hi, predictor.max_depth(), ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mtl_consumer: error: %s\n", e.what());
    return 1;
  }
}
