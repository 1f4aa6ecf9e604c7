#pragma once
// One place the run's records go through (Detectron2's EventStorage and writers, in small): the
// trainer puts each logged step, each evaluation and each console message into the store, and
// the store hands them to its writers in order (for a training run: metrics.jsonl, TensorBoard,
// the panel files in visuals/, then the console).
#include <memory>
#include <string>
#include <vector>

#include "train/log/console.h"
#include "train/log/metrics_log.h"
#include "train/log/records.h"
#include "train/log/tensorboard.h"

namespace mtl::train {

class RecordWriter {
 public:
  virtual ~RecordWriter() = default;
  virtual void write(const TrainRecord& r, const Progress& p) {}
  virtual void write(const EpochRecord& r) {}
  virtual void write(const EvalRecord& r) {}
  // A line for people (warnings, "new best ..."); only the console shows it.
  virtual void message(const std::string& line) {}
};

class RecordStore {
 public:
  void add(std::unique_ptr<RecordWriter> w) { writers_.push_back(std::move(w)); }
  void add_front(std::unique_ptr<RecordWriter> w) { writers_.insert(writers_.begin(), std::move(w)); }
  void put(const TrainRecord& r, const Progress& p);
  void put(const EpochRecord& r);
  void put(const EvalRecord& r);
  void message(const std::string& line);

 private:
  std::vector<std::unique_ptr<RecordWriter>> writers_;
};

// metrics.jsonl: train_record / eval_record, one line each.
class JsonlWriter : public RecordWriter {
 public:
  explicit JsonlWriter(const std::string& path) : log_(path) {}
  void write(const TrainRecord& r, const Progress& p) override;
  void write(const EpochRecord& r) override;
  void write(const EvalRecord& r) override;

 private:
  MetricsLog log_;
};

// The records' numbers as scalars ("train/loss", "train_epoch/miou", "eval/miou") and the panels as images
// ("val/<sample>"), flushed after each record so that TensorBoard shows them while training runs.
class TensorBoardWriter : public RecordWriter {
 public:
  explicit TensorBoardWriter(const std::string& run_dir) : events_(run_dir) {}
  void write(const TrainRecord& r, const Progress& p) override;
  void write(const EpochRecord& r) override;
  void write(const EvalRecord& r) override;

 private:
  EventWriter events_;
};

// The panels as PNG files: <dir>/epoch003_0.png at epoch ends, <dir>/step0001200_0.png between.
class PanelFileWriter : public RecordWriter {
 public:
  explicit PanelFileWriter(std::string dir) : dir_(std::move(dir)) {}
  void write(const EvalRecord& r) override;

 private:
  std::string dir_;
};

// Lines on stdout. On a terminal, a progress bar stays below the last line and is redrawn after
// each training line; any other output first clears it.
class ConsoleWriter : public RecordWriter {
 public:
  explicit ConsoleWriter(bool tty = stdout_is_tty()) : tty_(tty) {}
  ~ConsoleWriter() override;
  void write(const TrainRecord& r, const Progress& p) override;
  void write(const EpochRecord& r) override;
  void write(const EvalRecord& r) override;
  void message(const std::string& line) override;

 private:
  void clear_bar();
  bool tty_;
  bool bar_shown_ = false;
};

}  // namespace mtl::train
