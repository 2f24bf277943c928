// Summary tables: what an algorithm did to each layer, printable as text, JSON and CSV.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "algo/config.h"

namespace gs {

/// One layer of a summary.
struct SummaryRow {
  std::string layer;    ///< node name
  std::string op;       ///< op type
  std::string policy;   ///< "W8-per_channel-A8-per_tensor", "sparsity=0.50", "skip", ...
  int64_t paramsBefore = 0, paramsAfter = 0;  ///< parameter elements (after: non-zero for pruning)
  int64_t bytesBefore = 0, bytesAfter = 0;    ///< storage bytes of the layer's parameters
  /// Extra numeric columns (e.g. "sparsity", "mse"); the table shows the union of keys.
  std::map<std::string, double> metrics;
  std::string note;     ///< free text (skip reason, warnings)
};

/// A per-layer table plus totals.
struct SummaryTable {
  std::string algo;
  std::vector<SummaryRow> rows;
  /// Free-form key/value lines printed under the table ("calibration": "32 batches", ...).
  std::vector<std::pair<std::string, std::string>> notes;

  /// Sums of the params / bytes columns over all rows.
  SummaryRow total() const;
  /// Aligned text table with a header, one line per row and a total line.
  std::string toText() const;
  /// {"algo": ..., "rows": [{layer, op, policy, params_before, ...}], "total": {...}, "notes": {}}
  Json toJson() const;
  /// CSV with a header line; fields containing ',' '"' or newlines are quoted.
  std::string toCsv() const;
  /// Writes JSON (path ends in .json) or CSV (.csv) atomically; other extensions are an error.
  void write(const std::string& path) const;
};

}  // namespace gs
