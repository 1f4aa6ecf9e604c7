#include "train/data/synthetic/datagen.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/generator.h"
#include "core/file_io.h"
#include "train/data/transforms.h"

namespace mtl::train {

namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kDatagenVersion = 1;

struct V3 {
  double x = 0, y = 0, z = 0;
};
V3 operator+(V3 a, V3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
V3 operator-(V3 a, V3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
V3 operator*(V3 a, double s) { return {a.x * s, a.y * s, a.z * s}; }
V3 mul(V3 a, V3 b) { return {a.x * b.x, a.y * b.y, a.z * b.z}; }
V3 div(V3 a, V3 b) { return {a.x / b.x, a.y / b.y, a.z / b.z}; }
double dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
V3 normalize(V3 a) { return a * (1.0 / std::sqrt(dot(a, a))); }
double comp(V3 a, int i) { return i == 0 ? a.x : i == 1 ? a.y : a.z; }

// Surface kinds; each maps to one class (kClassOf).
enum Mat : uint8_t { kFloor, kTrough, kLeaf, kMelon, kPipe, kPillar, kClutter, kRoof, kWall };
constexpr uint8_t kClassOf[] = {3, 5, 5, 1, 2, 4, 6, 0, 0};

struct Ellipsoid {
  V3 c, r;
  Mat mat;
  int id;
  int axis;  // long axis of a melon (its stripes run along it)
};
struct Box {
  V3 lo, hi;
  Mat mat;
  int id;
};
struct PipeZ {  // a cylinder along z
  double x, y, r, z0, z1;
  int id;
};
struct Cluster {  // canopy of one metre of one bed, with its bounds
  V3 lo{kInf, kInf, kInf}, hi{-kInf, -kInf, -kInf};
  std::vector<Ellipsoid> items;
};

struct Hit {
  double t = kInf;
  V3 n;
  Mat mat = kWall;
  int id = -1;
  const Ellipsoid* ell = nullptr;
};

struct Scene {
  V3 origin;
  double R[3][3];
  double fx = 1, cx = 0, cy = 0;
  double roof_y = 3, wall_x = 3, far_z = 30;
  std::vector<Box> boxes;  // sorted by lo.z
  std::vector<PipeZ> pipes;
  std::vector<Cluster> clusters;  // sorted by lo.z
  std::vector<V3> albedo;         // per object id
  V3 floor_col, trough_col, roof_col, wall_col, haze_col, tint;
  V3 sun_dir;
  double sun = 0.6, ambient = 0.45, exposure = 1, haze_dist = 40, glow = 1, pixel_noise = 2;
  double max_range = 8, noise_a = 0.004, noise_b = 0.001;
  std::vector<std::array<double, 4>> holes;  // cx, cy, rx, ry in pixels
};

struct Rng {
  Generator g;
  double u(double a, double b) { return a + (b - a) * g.next_uniform(); }
  int i(int a, int b) { return std::min(b, a + static_cast<int>(g.next_uniform() * (b - a + 1))); }
  bool p(double q) { return g.next_uniform() < q; }
};

double deg(double d) { return d * kPi / 180.0; }

// Value noise on a unit lattice, hashed from integer coordinates: a smooth texture.
double lattice(int64_t x, int64_t y, int64_t z, uint64_t seed) {
  uint64_t h = seed ^ (static_cast<uint64_t>(x) * 0x9E3779B97F4A7C15ull) ^
               (static_cast<uint64_t>(y) * 0xC2B2AE3D27D4EB4Full) ^ (static_cast<uint64_t>(z) * 0x165667B19E3779F9ull);
  h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull;
  h ^= h >> 29;
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
}
double value_noise(V3 p, uint64_t seed) {
  const double fx = std::floor(p.x), fy = std::floor(p.y), fz = std::floor(p.z);
  const int64_t ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy), iz = static_cast<int64_t>(fz);
  auto sm = [](double t) { return t * t * (3 - 2 * t); };
  const double tx = sm(p.x - fx), ty = sm(p.y - fy), tz = sm(p.z - fz);
  double acc = 0;
  for (int c = 0; c < 8; ++c) {
    const int dx = c & 1, dy = (c >> 1) & 1, dz = c >> 2;
    const double w = (dx ? tx : 1 - tx) * (dy ? ty : 1 - ty) * (dz ? tz : 1 - tz);
    acc += w * lattice(ix + dx, iy + dy, iz + dz, seed);
  }
  return acc;
}
double texture(V3 p, double scale, uint64_t seed) {
  return 0.65 * value_noise(p * scale, seed) + 0.35 * value_noise(p * (scale * 2.7), seed + 17);
}

// Saturated colours away from the yellow-green of melons and leaves: blues, reds, purples, cyan.
V3 clutter_colour(Rng& r) {
  const double hues[] = {210, 235, 355, 5, 285, 300, 185};
  const double h = hues[r.i(0, 6)] + r.u(-8, 8), s = r.u(0.6, 0.9), v = r.u(0.45, 0.9);
  const double hh = std::fmod(h + 360.0, 360.0) / 60.0, c = v * s, x = c * (1 - std::fabs(std::fmod(hh, 2.0) - 1));
  V3 rgb = hh < 1 ? V3{c, x, 0} : hh < 2 ? V3{x, c, 0} : hh < 3 ? V3{0, c, x} : hh < 4 ? V3{0, x, c} : hh < 5 ? V3{x, 0, c} : V3{c, 0, x};
  return rgb + V3{v - c, v - c, v - c};
}

Scene build_scene(uint64_t seed, int W, int H) {
  Rng r{Generator(seed)};
  Scene s;
  const double pw = r.u(0.35, 0.55), bed_w = r.u(0.7, 1.1), bed_h = r.u(0.45, 0.85), canopy = r.u(0.2, 0.55);
  const double length = r.u(18, 30);
  s.roof_y = r.u(2.8, 3.8);
  s.wall_x = pw + bed_w + r.u(0.6, 1.5);
  s.far_z = length + r.u(1, 3);

  const double hfov = deg(r.u(58, 70));
  s.fx = (W / 2.0) / std::tan(hfov / 2);
  s.cx = W / 2.0, s.cy = H / 2.0;
  s.origin = {r.u(-0.4, 0.4) * pw, r.u(0.9, 1.6), 0};
  const double yaw = deg(r.u(-12, 12)), pitch = deg(r.u(5, 20)), roll = deg(r.u(-2, 2));
  // R = Ry(yaw) Rx(pitch) Rz(roll); camera looks along +z, +y is up, pitch > 0 looks down.
  const double cyw = std::cos(yaw), syw = std::sin(yaw), cp = std::cos(pitch), sp = std::sin(pitch);
  const double cr = std::cos(roll), sr = std::sin(roll);
  const double Ry[3][3] = {{cyw, 0, syw}, {0, 1, 0}, {-syw, 0, cyw}};
  const double Rx[3][3] = {{1, 0, 0}, {0, cp, -sp}, {0, sp, cp}};
  const double Rz[3][3] = {{cr, -sr, 0}, {sr, cr, 0}, {0, 0, 1}};
  double T[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) T[i][j] = Rx[i][0] * Rz[0][j] + Rx[i][1] * Rz[1][j] + Rx[i][2] * Rz[2][j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) s.R[i][j] = Ry[i][0] * T[0][j] + Ry[i][1] * T[1][j] + Ry[i][2] * T[2][j];

  // Appearance of this scene.
  const int floor_kind = r.i(0, 2);
  s.floor_col = floor_kind == 0 ? V3{0.52, 0.50, 0.46} : floor_kind == 1 ? V3{0.22, 0.22, 0.23} : V3{0.45, 0.38, 0.30};
  s.floor_col = s.floor_col * r.u(0.85, 1.15);
  const int trough_kind = r.i(0, 2);
  s.trough_col = trough_kind == 0 ? V3{0.10, 0.10, 0.11} : trough_kind == 1 ? V3{0.12, 0.26, 0.15} : V3{0.42, 0.30, 0.18};
  s.roof_col = V3{0.90, 0.93, 0.97};
  s.wall_col = V3{0.80, 0.84, 0.88} * r.u(0.9, 1.05);
  s.glow = r.u(0.9, 1.15);
  const double el = deg(r.u(30, 75)), az = deg(r.u(0, 360));
  s.sun_dir = normalize({std::cos(el) * std::sin(az), std::sin(el), std::cos(el) * std::cos(az)});
  s.sun = r.u(0.4, 0.8);
  s.ambient = r.u(0.35, 0.6);
  s.exposure = r.u(0.8, 1.2);
  s.tint = {1 + r.u(-0.06, 0.06), 1.0, 1 + r.u(-0.06, 0.06)};
  s.haze_dist = r.u(25, 60);
  s.haze_col = V3{0.85, 0.87, 0.9};
  s.pixel_noise = r.u(1, 4);
  s.max_range = r.u(6, 9);
  s.noise_a = r.u(0.002, 0.006);
  s.noise_b = r.u(0.0005, 0.0015);
  const V3 pillar_col = V3{0.45, 0.50, 0.60} * r.u(0.85, 1.15), pipe_col = V3{0.80, 0.80, 0.82} * r.u(0.9, 1.05);

  auto new_id = [&](V3 albedo) {
    s.albedo.push_back(albedo);
    return static_cast<int>(s.albedo.size()) - 1;
  };
  const double z_start = -3;
  for (int side : {-1, 1}) {
    // Raised bed (trough) on the side of the path.
    const double x0 = side * pw, x1 = side * (pw + bed_w);
    s.boxes.push_back({{std::min(x0, x1), 0, z_start}, {std::max(x0, x1), bed_h, length}, kTrough, new_id(s.trough_col)});
    // Heating pipes along the bed: one low in the path, often a second on the bed's face.
    const double pr = r.u(0.035, 0.05);
    s.pipes.push_back({side * (pw - r.u(0.06, 0.14)), r.u(0.1, 0.16), pr, z_start, length, new_id(pipe_col)});
    if (r.p(0.7))
      s.pipes.push_back({side * (pw - pr - 0.01), r.u(0.3, std::min(0.55, bed_h - 0.1)), pr, z_start, length, new_id(pipe_col)});
  }
  // Posts along both path edges and behind the beds, from the floor to the roof.
  const double spacing = r.u(2.5, 4.0), ph = r.u(0.045, 0.07);
  for (double z = r.u(0.8, 2.5); z < length; z += spacing) {
    for (int side : {-1, 1}) {
      const double xi = side * (pw + 0.3 * ph), xo = side * (pw + bed_w + 0.15);
      for (double xc : {xi, xo})
        s.boxes.push_back({{xc - ph, 0, z - ph}, {xc + ph, s.roof_y, z + ph}, kPillar, new_id(pillar_col)});
    }
  }
  // Unknown objects (crates, bins) on the path.
  const int n_clutter = r.p(0.1) ? 0 : r.i(1, 4);
  for (int k = 0; k < n_clutter; ++k) {
    const V3 size{r.u(0.3, 0.55), r.u(0.25, 0.55), r.u(0.3, 0.55)};
    const double z = r.u(1.5, 9);
    const int side = r.p(0.5) ? -1 : 1;
    const double xc = r.p(0.7) ? side * (pw - size.x / 2 - r.u(0, 0.1)) : r.u(-0.2, 0.2);
    s.boxes.push_back({{xc - size.x / 2, 0, z}, {xc + size.x / 2, size.y, z + size.z}, kClutter, new_id(clutter_colour(r))});
  }
  std::sort(s.boxes.begin(), s.boxes.end(), [](const Box& a, const Box& b) { return a.lo.z < b.lo.z; });

  // Canopy: leaves on top of and hanging over each bed, chamoe melons among them.
  for (int side : {-1, 1}) {
    for (double z0 = -2; z0 < length; z0 += 1.0) {
      Cluster c;
      auto add = [&](V3 centre, V3 radii, Mat m, V3 albedo, int axis) {
        Ellipsoid e{centre, radii, m, new_id(albedo), axis};
        c.items.push_back(e);
        c.lo = {std::min(c.lo.x, centre.x - radii.x), std::min(c.lo.y, centre.y - radii.y), std::min(c.lo.z, centre.z - radii.z)};
        c.hi = {std::max(c.hi.x, centre.x + radii.x), std::max(c.hi.y, centre.y + radii.y), std::max(c.hi.z, centre.z + radii.z)};
      };
      auto leaf_colour = [&] {
        return V3{0.18 * r.u(0.7, 1.3), 0.45 * r.u(0.75, 1.25), 0.12 * r.u(0.6, 1.4)};
      };
      const int n_top = r.i(7, 12), n_hang = r.i(2, 5), n_melon = r.i(1, 3);
      for (int k = 0; k < n_top; ++k)
        add({side * (pw + r.u(-0.05, bed_w)), bed_h + r.u(0, canopy), z0 + r.u(0, 1)},
            {r.u(0.1, 0.2), r.u(0.05, 0.11), r.u(0.1, 0.2)}, kLeaf, leaf_colour(), 0);
      for (int k = 0; k < n_hang; ++k)
        add({side * (pw + r.u(-0.04, 0.06)), bed_h - r.u(0, 0.35), z0 + r.u(0, 1)},
            {r.u(0.04, 0.08), r.u(0.08, 0.15), r.u(0.08, 0.15)}, kLeaf, leaf_colour(), 0);
      for (int k = 0; k < n_melon; ++k) {
        const int axis = r.p(0.5) ? 1 : 2;
        const double lng = r.u(0.10, 0.13), shrt = r.u(0.07, 0.09);
        const V3 radii = axis == 1 ? V3{shrt, lng, shrt} : V3{shrt, shrt, lng};
        const V3 col = V3{0.95, 0.78, 0.12} * r.u(0.9, 1.05) + V3{0, r.u(-0.05, 0.05), 0};
        add({side * (pw + r.u(-0.06, 0.2)), r.u(bed_h - 0.3, bed_h + canopy * 0.7), z0 + r.u(0, 1)}, radii, kMelon, col, axis);
      }
      s.clusters.push_back(std::move(c));
    }
  }
  std::sort(s.clusters.begin(), s.clusters.end(), [](const Cluster& a, const Cluster& b) { return a.lo.z < b.lo.z; });

  const int n_holes = r.i(0, 5);
  for (int k = 0; k < n_holes; ++k)
    s.holes.push_back({r.u(0, W), r.u(0, H), r.u(0.02, 0.08) * W, r.u(0.02, 0.08) * W});
  return s;
}

// Slab test: entry distance of the ray into the box (and the face normal), or kInf.
double hit_box(V3 o, V3 d, V3 lo, V3 hi, V3* normal) {
  double t0 = -kInf, t1 = kInf;
  int axis = 0;
  double sign = 1;
  for (int a = 0; a < 3; ++a) {
    const double oa = comp(o, a), da = comp(d, a), la = comp(lo, a), ha = comp(hi, a);
    if (std::fabs(da) < 1e-12) {
      if (oa < la || oa > ha) return kInf;
      continue;
    }
    double ta = (la - oa) / da, tb = (ha - oa) / da;
    double s = -1;
    if (ta > tb) std::swap(ta, tb), s = 1;
    if (ta > t0) t0 = ta, axis = a, sign = s;
    t1 = std::min(t1, tb);
  }
  if (t0 > t1 || t0 <= 1e-6) return kInf;
  if (normal) *normal = V3{axis == 0 ? sign : 0, axis == 1 ? sign : 0, axis == 2 ? sign : 0};
  return t0;
}

double hit_ellipsoid(V3 o, V3 d, const Ellipsoid& e) {
  const V3 oc = div(o - e.c, e.r), dd = div(d, e.r);
  const double a = dot(dd, dd), b = dot(oc, dd), c = dot(oc, oc) - 1;
  const double disc = b * b - a * c;
  if (disc < 0) return kInf;
  const double t = (-b - std::sqrt(disc)) / a;
  return t > 1e-6 ? t : kInf;
}

double hit_pipe(V3 o, V3 d, const PipeZ& p, V3* normal) {
  const double ox = o.x - p.x, oy = o.y - p.y;
  const double a = d.x * d.x + d.y * d.y, b = ox * d.x + oy * d.y, c = ox * ox + oy * oy - p.r * p.r;
  if (a < 1e-12) return kInf;
  const double disc = b * b - a * c;
  if (disc < 0) return kInf;
  const double t = (-b - std::sqrt(disc)) / a;
  if (t <= 1e-6) return kInf;
  const double z = o.z + t * d.z;
  if (z < p.z0 || z > p.z1) return kInf;
  *normal = normalize({ox + t * d.x, oy + t * d.y, 0});
  return t;
}

Hit trace(const Scene& s, V3 o, V3 d) {
  Hit h;
  auto plane = [&](double t, V3 n, Mat m) {
    if (t > 1e-6 && t < h.t) h.t = t, h.n = n, h.mat = m, h.id = -1, h.ell = nullptr;
  };
  if (d.y < 0) plane(-o.y / d.y, {0, 1, 0}, kFloor);
  if (d.y > 0) plane((s.roof_y - o.y) / d.y, {0, -1, 0}, kRoof);
  if (d.x > 0) plane((s.wall_x - o.x) / d.x, {-1, 0, 0}, kWall);
  if (d.x < 0) plane((-s.wall_x - o.x) / d.x, {1, 0, 0}, kWall);
  if (d.z > 0) plane((s.far_z - o.z) / d.z, {0, 0, -1}, kWall);
  // Objects are sorted by their nearest z; with d.z > 0 a point beyond the current hit's z is
  // farther along the ray, so the scan stops there.
  const bool forward = d.z > 0;
  auto beyond = [&](double zlo) { return forward && zlo > o.z + h.t * d.z; };
  for (const Box& b : s.boxes) {
    if (beyond(b.lo.z)) break;
    V3 n;
    const double t = hit_box(o, d, b.lo, b.hi, &n);
    if (t < h.t) h.t = t, h.n = n, h.mat = b.mat, h.id = b.id, h.ell = nullptr;
  }
  for (const PipeZ& p : s.pipes) {
    V3 n;
    const double t = hit_pipe(o, d, p, &n);
    if (t < h.t) h.t = t, h.n = n, h.mat = kPipe, h.id = p.id, h.ell = nullptr;
  }
  for (const Cluster& c : s.clusters) {
    if (beyond(c.lo.z)) break;
    if (hit_box(o, d, c.lo, c.hi, nullptr) == kInf) {
      // The box test fails when the ray starts inside the bounds; only then test the items.
      if (!(o.x >= c.lo.x && o.x <= c.hi.x && o.y >= c.lo.y && o.y <= c.hi.y && o.z >= c.lo.z && o.z <= c.hi.z)) continue;
    }
    for (const Ellipsoid& e : c.items) {
      const double t = hit_ellipsoid(o, d, e);
      if (t < h.t) {
        const V3 p = o + d * t;
        h.t = t, h.n = normalize(div(p - e.c, mul(e.r, e.r))), h.mat = e.mat, h.id = e.id, h.ell = &e;
      }
    }
  }
  return h;
}

V3 shade(const Scene& s, const Hit& h, V3 o, V3 d, uint64_t seed) {
  const V3 p = o + d * h.t;
  V3 n = h.n;
  if (dot(n, d) > 0) n = n * -1.0;
  const double lambert = std::max(0.0, dot(n, s.sun_dir));
  const double light = s.ambient + s.sun * lambert;
  V3 c;
  switch (h.mat) {
    case kFloor:
      c = s.floor_col * (light * (0.8 + 0.4 * texture(p, 7.0, seed + 1)));
      break;
    case kTrough:
      c = s.albedo[h.id] * (light * (0.85 + 0.3 * texture(p, 3.0, seed + 2)));
      break;
    case kLeaf:
      c = s.albedo[h.id] * (light * (0.8 + 0.4 * texture(p, 18.0, seed + 3)));
      break;
    case kMelon: {
      // Chamoe: yellow with pale stripes along the long axis.
      const Ellipsoid& e = *h.ell;
      const V3 q = p - e.c;
      const double a = e.axis == 1 ? std::atan2(q.z, q.x) : std::atan2(q.y, q.x);
      const double stripe = std::fmod(a / (2 * kPi) * 10.0 + 10.0, 1.0) < 0.14 ? 1.0 : 0.0;
      const V3 alb = s.albedo[h.id] * (1 - stripe) + V3{0.96, 0.94, 0.80} * stripe;
      c = alb * light;
      break;
    }
    case kPipe: {
      const V3 half = normalize(s.sun_dir - normalize(d));
      const double spec = std::pow(std::max(0.0, dot(n, half)), 40.0) * 0.8 * s.sun;
      c = s.albedo[h.id] * light + V3{spec, spec, spec};
      break;
    }
    case kPillar:
    case kClutter:
      c = s.albedo[h.id] * light;
      break;
    case kRoof:
      // Film lit from outside: bright, with the faint pattern of its seams.
      c = s.roof_col * (s.glow * (0.9 + 0.15 * texture(p, 0.7, seed + 4)));
      break;
    case kWall:
      c = s.wall_col * (s.glow * (0.85 + 0.2 * texture(p, 0.9, seed + 5)));
      break;
  }
  const double haze = 1 - std::exp(-h.t / s.haze_dist);
  c = c * (1 - haze) + s.haze_col * haze;
  return mul(c, s.tint) * s.exposure;
}

// Two uniforms and a standard normal for pixel k of stream `salt`: counter-based, so the order
// in which pixels are visited does not matter.
struct PixelRandom {
  double u0, u1, normal;
};
PixelRandom pixel_random(uint64_t seed, uint64_t salt, uint64_t k) {
  const auto w = philox4x32(seed ^ salt, 1, k);
  const double u0 = (w[0] + 0.5) / 4294967296.0, u1 = (w[1] + 0.5) / 4294967296.0;
  const double a = (w[2] + 0.5) / 4294967296.0, b = (w[3] + 0.5) / 4294967296.0;
  return {u0, u1, std::sqrt(-2.0 * std::log(a)) * std::cos(2 * kPi * b)};
}

}  // namespace

uint64_t frame_seed(uint64_t seed, int split, int64_t index) { return mix_seed(seed, split, index, 0x64617461ull); }

Frame render_frame(uint64_t seed, int W, int H) {
  MTL_CHECK(W >= 8 && H >= 8 && W <= 8192 && H <= 8192, "datagen: image size ", W, "x", H,
            " is out of range (8 to 8192 per side)");
  const Scene s = build_scene(seed, W, H);
  Frame f;
  f.rgb = ImageU8(W, H, 3);
  f.mask = ImageU8(W, H, 1);
  f.depth = ImageU16(W, H, 1);
  f.true_depth = ImageF(W, H, 1);
  std::vector<uint8_t> mat(static_cast<size_t>(W) * H);
  const double vig = 0.25 / (s.cx * s.cx + s.cy * s.cy);
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const V3 dc{(x + 0.5 - s.cx) / s.fx, -(y + 0.5 - s.cy) / s.fx, 1.0};
      // With the camera-space direction's z at 1, the ray parameter t is the z-depth.
      const V3 d{s.R[0][0] * dc.x + s.R[0][1] * dc.y + s.R[0][2],
                 s.R[1][0] * dc.x + s.R[1][1] * dc.y + s.R[1][2],
                 s.R[2][0] * dc.x + s.R[2][1] * dc.y + s.R[2][2]};
      const Hit h = trace(s, s.origin, d);
      const size_t k = static_cast<size_t>(y) * W + x;
      mat[k] = h.mat;
      f.mask.data[k] = kClassOf[h.mat];
      f.true_depth.data[k] = static_cast<float>(h.t);
      V3 c = shade(s, h, s.origin, d, seed);
      const double rx = x + 0.5 - s.cx, ry = y + 0.5 - s.cy;
      c = c * (1 - vig * (rx * rx + ry * ry));
      const double cc[3] = {c.x, c.y, c.z};
      for (int ch = 0; ch < 3; ++ch) {
        const double v = cc[ch] * 255.0 + s.pixel_noise * pixel_random(seed, 0x1000 + ch, k).normal;
        f.rgb.data[3 * k + ch] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  // Sensor model: depth-proportional noise, far-range dropout, no return from the film, losses
  // at depth edges and on shiny pipes, and a few blob-shaped holes.
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const size_t k = static_cast<size_t>(y) * W + x;
      const double z = f.true_depth.data[k];
      double drop = 0;
      if (z < 0.25 || z > s.max_range) drop = 1;
      else if (z > 0.75 * s.max_range) drop = (z - 0.75 * s.max_range) / (0.25 * s.max_range);
      if (mat[k] == kRoof || mat[k] == kWall) drop = std::max(drop, 0.6);
      if (mat[k] == kPipe) drop += 0.15;
      const int nb[4][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}};
      for (const auto& o : nb) {
        const int xx = x + o[0], yy = y + o[1];
        if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
        if (std::fabs(f.true_depth.at(xx, yy) - z) > 0.1 * z) {
          drop += 0.3;
          break;
        }
      }
      for (const auto& hole : s.holes) {
        const double dx = (x + 0.5 - hole[0]) / hole[2], dy = (y + 0.5 - hole[1]) / hole[3];
        if (dx * dx + dy * dy < 1) drop = 1;
      }
      const PixelRandom pr = pixel_random(seed, 0x2000, k);
      if (pr.u0 < drop) continue;  // stays 0: no measurement
      const double noisy = z + (s.noise_a * z + s.noise_b * z * z) * pr.normal;
      f.depth.data[k] = static_cast<uint16_t>(std::clamp(std::lround(noisy * 1000.0), 1L, 65535L));
    }
  }
  return f;
}

DatagenSummary generate_dataset(const DatagenOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  MTL_CHECK(!opt.out.empty(), "datagen: no output folder given");
  MTL_CHECK(opt.train >= 0 && opt.val >= 0 && opt.test >= 0 && opt.train + opt.val + opt.test > 0,
            "datagen: frame counts must be >= 0 and not all 0 (train ", opt.train, ", val ", opt.val, ", test ",
            opt.test, ")");
  const fs::path out(opt.out);
  const fs::path meta = out / "mtl_datagen.json";
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
    MTL_CHECK(fs::is_directory(out, ec), "datagen: '", opt.out, "' exists and is not a folder");
    MTL_CHECK(fs::exists(meta, ec), "datagen: '", opt.out,
              "' is not empty and holds no earlier mtl_datagen output (no mtl_datagen.json); choose a new folder");
    MTL_CHECK(opt.force, "datagen: '", opt.out, "' already holds an mtl_datagen output; pass --force to replace it");
    for (const char* split : {"train", "val", "test"}) fs::remove_all(out / split, ec);
    for (const char* f : {"mtl_datagen.json", "README.md", "mtl_stats.json"}) fs::remove(out / f, ec);
  }
  const char* split_names[] = {"train", "val", "test"};
  const int counts[] = {opt.train, opt.val, opt.test};
  struct Job {
    int split;
    int64_t index;
  };
  std::vector<Job> jobs;
  for (int sp = 0; sp < 3; ++sp) {
    for (const char* sub : {"images", "masks", "depth"}) {
      fs::create_directories(out / split_names[sp] / sub, ec);
      MTL_CHECK(!ec, "datagen: cannot create '", (out / split_names[sp] / sub).string(), "': ", ec.message());
    }
    for (int64_t i = 0; i < counts[sp]; ++i) jobs.push_back({sp, i});
  }
  const int W = opt.size.width, H = opt.size.height;
  const int64_t n = static_cast<int64_t>(jobs.size());
  std::vector<std::array<int64_t, 7>> class_px(n);
  std::vector<int64_t> valid(n, 0);
  std::vector<std::string> errors(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n; ++j) {
    try {
      const Job job = jobs[j];
      const Frame f = render_frame(frame_seed(opt.seed, job.split, job.index), W, H);
      char name[32];
      std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(job.index));
      const fs::path base = out / split_names[job.split];
      write_png((base / "images" / name).string(), f.rgb);
      write_png((base / "masks" / name).string(), f.mask);
      write_png16((base / "depth" / name).string(), f.depth);
      class_px[j].fill(0);
      for (uint8_t l : f.mask.data) ++class_px[j][l];
      for (uint16_t v : f.depth.data) valid[j] += v > 0;
    } catch (const std::exception& e) {
      errors[j] = e.what();
    }
  }
  for (const std::string& e : errors) MTL_CHECK(e.empty(), "datagen: ", e);

  DatagenSummary sum;
  sum.frames = n;
  sum.class_pixels.assign(7, 0);
  std::array<std::array<int64_t, 7>, 3> per_split{};
  for (int64_t j = 0; j < n; ++j) {
    for (int c = 0; c < 7; ++c) sum.class_pixels[c] += class_px[j][c], per_split[jobs[j].split][c] += class_px[j][c];
    sum.depth_valid += valid[j];
  }
  sum.pixels = n * W * H;

  const std::vector<ClassInfo> classes = greenhouse_classes();
  nlohmann::json j;
  j["generator"] = "mtl_datagen";
  j["version"] = kDatagenVersion;
  j["seed"] = opt.seed;
  j["size"] = to_string(opt.size);
  j["depth_scale"] = 0.001;
  j["depth_units"] = "millimetres; 0 = no measurement";
  j["splits"] = {{"train", opt.train}, {"val", opt.val}, {"test", opt.test}};
  nlohmann::json cls = nlohmann::json::array();
  for (int c = 0; c < 7; ++c) {
    nlohmann::json frac;
    for (int sp = 0; sp < 3; ++sp)
      frac[split_names[sp]] = counts[sp] ? static_cast<double>(per_split[sp][c]) / (static_cast<double>(counts[sp]) * W * H) : 0.0;
    cls.push_back({{"id", c}, {"name", classes[c].name}, {"color", classes[c].color}, {"pixel_fraction", frac}});
  }
  j["classes"] = cls;
  j["depth_valid_fraction"] = sum.pixels ? static_cast<double>(sum.depth_valid) / static_cast<double>(sum.pixels) : 0.0;
  write_file_atomic(meta.string(), j.dump(2) + "\n");

  std::string readme =
      "# Procedural greenhouse RGB-D data set\n\n"
      "Written by `mtl_datagen` (seed " + std::to_string(opt.seed) + ", " + to_string(opt.size) + ", " +
      std::to_string(opt.train) + " train / " + std::to_string(opt.val) + " val / " + std::to_string(opt.test) +
      " test frames). The same command gives the same bytes.\n\n"
      "Layout (docs/dataset_format.md): `{train,val,test}/images/*.png` (8-bit RGB),\n"
      "`masks/*.png` (8-bit class ids), `depth/*.png` (16-bit, millimetres, so `data.depth_scale: 0.001`;\n"
      "0 = no measurement).\n\n"
      "Classes: 0 background (roof, walls), 1 chamoe (yellow striped melons), 2 heatpipe (pipes along\n"
      "the beds), 3 path (floor), 4 pillar (posts), 5 topdownfarm (raised beds and their leaves),\n"
      "6 unknown (crates and bins).\n\n"
      "Scenes are ray cast through a pinhole camera in the aisle between two raised beds, so labels and\n"
      "depth are exact; the depth maps then get a sensor model: noise growing with depth, dropout\n"
      "towards the far range, no return from the plastic film, losses at depth edges and on shiny\n"
      "pipes, and blob-shaped holes. Per-class pixel fractions are in mtl_datagen.json.\n";
  write_file_atomic((out / "README.md").string(), readme);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace mtl::train
