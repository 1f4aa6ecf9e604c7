#pragma once
// The schema: every configuration key in document order with its reader, writer and help text,
// the sections' help, and lookups by key path. Internal to train/config/.
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "train/config/field_readers.h"

namespace mtl::train::schema {

// A data.label_map entry that says `ignore`, before the tree walk resolves it to ignore_index.
constexpr int kIgnoreMark = std::numeric_limits<int>::min();

const std::vector<Field>& fields();
const std::map<std::string, std::string>& section_help();
const Field* find_field(const std::string& path);
// Every key and every section ("train", "train.early_stopping", ...), for suggestions.
std::vector<std::string> all_paths_and_sections();
bool is_section(const std::string& path);

}  // namespace mtl::train::schema
