// Summary table rendering: aligned text, JSON and CSV.
#include "algo/summary.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "support/error.h"
#include "support/file_util.h"

namespace gs {

namespace {

std::vector<std::string> metricKeys(const std::vector<SummaryRow>& rows) {
  std::set<std::string> keys;
  for (auto& r : rows)
    for (auto& [k, v] : r.metrics) keys.insert(k);
  return {keys.begin(), keys.end()};
}

std::string fmtMetric(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string csvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

bool endsWith(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

SummaryRow SummaryTable::total() const {
  SummaryRow t;
  t.layer = "total";
  for (auto& r : rows) {
    t.paramsBefore += r.paramsBefore;
    t.paramsAfter += r.paramsAfter;
    t.bytesBefore += r.bytesBefore;
    t.bytesAfter += r.bytesAfter;
  }
  return t;
}

std::string SummaryTable::toText() const {
  auto keys = metricKeys(rows);
  std::vector<std::string> header{"layer", "op", "policy", "params before", "params after",
                                  "bytes before", "bytes after"};
  for (auto& k : keys) header.push_back(k);
  header.push_back("note");
  std::vector<std::vector<std::string>> cells;
  auto addRow = [&](const SummaryRow& r, bool is_total) {
    std::vector<std::string> c{r.layer, r.op, r.policy, std::to_string(r.paramsBefore),
                               std::to_string(r.paramsAfter), std::to_string(r.bytesBefore),
                               std::to_string(r.bytesAfter)};
    for (auto& k : keys) {
      auto it = r.metrics.find(k);
      c.push_back(it == r.metrics.end() || is_total ? "" : fmtMetric(it->second));
    }
    c.push_back(r.note);
    cells.push_back(std::move(c));
  };
  for (auto& r : rows) addRow(r, false);
  addRow(total(), true);
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (auto& c : cells)
    for (size_t i = 0; i < c.size(); ++i) w[i] = std::max(w[i], c[i].size());
  auto numeric = [&](size_t i) { return i >= 3 && i + 1 < header.size(); };
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& c) {
    std::string s;
    for (size_t i = 0; i < c.size(); ++i) {
      if (i) s += "  ";
      size_t pad = w[i] - c[i].size();
      if (numeric(i)) s += std::string(pad, ' ') + c[i];
      else s += c[i] + (i + 1 < c.size() ? std::string(pad, ' ') : "");
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    os << s << "\n";
  };
  if (!algo.empty()) os << "summary of " << algo << ":\n";
  line(header);
  size_t width = 0;
  for (auto x : w) width += x + 2;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i + 1 == cells.size()) os << std::string(width - 2, '-') << "\n";
    line(cells[i]);
  }
  for (auto& [k, v] : notes) os << k << ": " << v << "\n";
  return os.str();
}

Json SummaryTable::toJson() const {
  auto rowJson = [](const SummaryRow& r) {
    Json j = Json::object();
    j["layer"] = r.layer;
    j["op"] = r.op;
    j["policy"] = r.policy;
    j["params_before"] = r.paramsBefore;
    j["params_after"] = r.paramsAfter;
    j["bytes_before"] = r.bytesBefore;
    j["bytes_after"] = r.bytesAfter;
    Json m = Json::object();
    for (auto& [k, v] : r.metrics) m[k] = v;
    j["metrics"] = m;
    j["note"] = r.note;
    return j;
  };
  Json j = Json::object();
  j["algo"] = algo;
  j["rows"] = Json::array();
  for (auto& r : rows) j["rows"].push_back(rowJson(r));
  Json t = rowJson(total());
  t.erase("op");
  t.erase("policy");
  t.erase("metrics");
  t.erase("note");
  j["total"] = t;
  Json n = Json::object();
  for (auto& [k, v] : notes) n[k] = v;
  j["notes"] = n;
  return j;
}

std::string SummaryTable::toCsv() const {
  auto keys = metricKeys(rows);
  std::ostringstream os;
  os << "layer,op,policy,params_before,params_after,bytes_before,bytes_after";
  for (auto& k : keys) os << "," << csvField(k);
  os << ",note\n";
  for (auto& r : rows) {
    os << csvField(r.layer) << "," << csvField(r.op) << "," << csvField(r.policy) << ","
       << r.paramsBefore << "," << r.paramsAfter << "," << r.bytesBefore << "," << r.bytesAfter;
    for (auto& k : keys) {
      auto it = r.metrics.find(k);
      os << ",";
      if (it != r.metrics.end()) os << fmtMetric(it->second);
    }
    os << "," << csvField(r.note) << "\n";
  }
  return os.str();
}

void SummaryTable::write(const std::string& path) const {
  if (endsWith(path, ".json")) return writeFileAtomic(path, toJson().dump(2) + "\n");
  if (endsWith(path, ".csv")) return writeFileAtomic(path, toCsv());
  GS_FAIL(path, ": summary file must end in .json or .csv");
}

}  // namespace gs
