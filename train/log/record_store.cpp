#include "train/log/record_store.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "train/data/image_io.h"

namespace mtl::train {

void RecordStore::put(const TrainRecord& r, const Progress& p) {
  for (auto& w : writers_) w->write(r, p);
}

void RecordStore::put(const EpochRecord& r) {
  for (auto& w : writers_) w->write(r);
}

void RecordStore::put(const EvalRecord& r) {
  for (auto& w : writers_) w->write(r);
}

void RecordStore::message(const std::string& line) {
  for (auto& w : writers_) w->message(line);
}

void JsonlWriter::write(const TrainRecord& r, const Progress&) { log_.log(train_record(r)); }
void JsonlWriter::write(const EpochRecord& r) { log_.log(epoch_record(r)); }
void JsonlWriter::write(const EvalRecord& r) { log_.log(eval_record(r)); }

void TensorBoardWriter::write(const TrainRecord& r, const Progress&) {
  events_.add_scalars(record_scalars(train_record(r)), r.step);
  events_.flush();
}

void TensorBoardWriter::write(const EpochRecord& r) {
  events_.add_scalars(record_scalars(epoch_record(r)), r.step);
  events_.flush();
}

void TensorBoardWriter::write(const EvalRecord& r) {
  events_.add_scalars(record_scalars(eval_record(r)), r.step);
  for (const auto& [name, image] : r.panels) events_.add_image("val/" + name, image, r.step);
  events_.flush();
}

void PanelFileWriter::write(const EvalRecord& r) {
  for (size_t i = 0; i < r.panels.size(); ++i) {
    char name[64];
    if (r.epoch_end)
      std::snprintf(name, sizeof name, "epoch%03d_%zu.png", r.epoch, i);
    else
      std::snprintf(name, sizeof name, "step%07lld_%zu.png", static_cast<long long>(r.step), i);
    write_png((std::filesystem::path(dir_) / name).string(), r.panels[i].second);
  }
}

ConsoleWriter::~ConsoleWriter() {
  if (bar_shown_) std::cout << "\n" << std::flush;
}

void ConsoleWriter::clear_bar() {
  if (!bar_shown_) return;
  std::cout << "\r\33[2K";
  bar_shown_ = false;
}

void ConsoleWriter::write(const TrainRecord& r, const Progress& p) {
  clear_bar();
  std::cout << format_train_line(r, p) << std::endl;
  if (tty_) {
    std::cout << progress_bar(r.step, p.total_steps) << std::flush;
    bar_shown_ = true;
  }
}

void ConsoleWriter::write(const EpochRecord& r) { message(format_epoch_line(r)); }
void ConsoleWriter::write(const EvalRecord& r) { message(format_eval_line(r)); }

void ConsoleWriter::message(const std::string& line) {
  clear_bar();
  std::cout << line << std::endl;
}

}  // namespace mtl::train
