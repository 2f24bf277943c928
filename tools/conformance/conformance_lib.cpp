// Conformance runner core: case execution, fork isolation, allclose comparison, summaries.
#include "conformance.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "io/onnx.h"
#include "io/tensor_proto.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs::conformance {

namespace fs = std::filesystem;

const char* statusName(Status s) {
  switch (s) {
    case Status::Passed: return "passed";
    case Status::Failed: return "failed";
    case Status::Unsupported: return "unsupported";
  }
  return "?";
}

bool allClose(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol,
              std::string* why) {
  auto fail = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  if (actual.scalar_type() != expected.scalar_type())
    return fail(std::string("dtype ") + c10::toString(actual.scalar_type()) + ", expected " +
                c10::toString(expected.scalar_type()));
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream os;
    os << "shape " << actual.sizes() << ", expected " << expected.sizes();
    return fail(os.str());
  }
  if (actual.numel() == 0) return true;
  at::Tensor a = actual.detach().cpu(), e = expected.detach().cpu();
  if (!a.is_floating_point() && !a.is_complex()) {
    at::Tensor ne = a.ne(e).reshape({-1});
    if (!ne.any().item<bool>()) return true;
    int64_t i = ne.nonzero()[0][0].item<int64_t>();
    std::ostringstream os;
    os << ne.sum().item<int64_t>() << "/" << a.numel() << " elements differ; first at flat index "
       << i << ": got " << a.reshape({-1})[i].item<int64_t>() << ", expected "
       << e.reshape({-1})[i].item<int64_t>();
    return fail(os.str());
  }
  if (a.is_complex()) {
    a = at::view_as_real(a.resolve_conj());
    e = at::view_as_real(e.resolve_conj());
  }
  a = a.to(at::kDouble).reshape({-1});
  e = e.to(at::kDouble).reshape({-1});
  at::Tensor both_nan = a.isnan().logical_and(e.isnan());
  // Infinities must match exactly (numpy compares their positions and signs separately).
  at::Tensor finite = a.isfinite().logical_and(e.isfinite());
  at::Tensor ok = (a - e).abs().le(atol + rtol * e.abs()).logical_and(finite)
                      .logical_or(a.eq(e)).logical_or(both_nan);
  if (ok.all().item<bool>()) return true;
  at::Tensor bad = ok.logical_not();
  int64_t i = bad.nonzero()[0][0].item<int64_t>();
  std::ostringstream os;
  os << std::setprecision(9) << bad.sum().item<int64_t>() << "/" << a.numel()
     << " elements differ; first at flat index " << i << ": got " << a[i].item<double>()
     << ", expected " << e[i].item<double>();
  return fail(os.str());
}

namespace {

bool parseModel(const std::string& path, onnx::ModelProto* m) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;  // never block on a FIFO in the parent
  std::string bytes;
  try {
    bytes = readFile(path);
  } catch (const Error&) {
    return false;
  }
  return m->ParseFromString(bytes);
}

std::string modelOpType(const onnx::ModelProto& m) {
  std::set<std::string> ops;
  std::string last;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == "Constant") continue;
    ops.insert(n.op_type());
    last = n.op_type();
  }
  if (ops.size() == 1) return *ops.begin();
  return last;
}

/// Files `<prefix><k>.pb` in `dir`, ordered by k.
std::vector<std::string> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, std::string>> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) != 0 || f.size() < prefix.size() + 4 ||
        f.compare(f.size() - 3, 3, ".pb") != 0)
      continue;
    std::string num = f.substr(prefix.size(), f.size() - prefix.size() - 3);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stoi(num), e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> r;
  for (auto& [k, p] : found) r.push_back(p);
  return r;
}

/// Thrown for test data gstick cannot represent (string / unsigned tensors...).
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

at::Tensor readData(const std::string& path, std::string* name) {
  try {
    return readTensorProtoFile(path, name);
  } catch (const Error& e) {
    std::string m = e.what();
    if (m.find("not supported") != std::string::npos) throw Unsupported(m);
    throw;
  }
}

/// Runs every data set of the case; throws on the first failure; returns a summary line.
void runDataSets(const fs::path& dir, const Graph& g, Executor& ex) {
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  GS_CHECK(!sets.empty(), dir.string(), ": no test_data_set_* folder");
  for (const auto& s : sets) {
    const std::string set = s.filename().string();
    auto in_files = numberedFiles(s, "input_");
    auto out_files = numberedFiles(s, "output_");
    GS_CHECK(in_files.size() == g.inputs().size(), set, ": ", in_files.size(),
             " input files for ", g.inputs().size(), " graph inputs");
    GS_CHECK(out_files.size() == g.outputs().size(), set, ": ", out_files.size(),
             " output files for ", g.outputs().size(), " graph outputs");
    std::vector<at::Tensor> ins;
    for (size_t k = 0; k < in_files.size(); ++k) {
      std::string name;
      ins.push_back(readData(in_files[k], &name));
      GS_CHECK(name.empty() || name == g.inputs()[k]->name(), set, ": input_", k, ".pb is named '",
               name, "' but graph input ", k, " is '", g.inputs()[k]->name(), "'");
    }
    auto outs = ex.run(ins);
    for (size_t k = 0; k < out_files.size(); ++k) {
      std::string name, why;
      at::Tensor expected = readData(out_files[k], &name);
      GS_CHECK(allClose(outs[k], expected, 1e-3, 1e-7, &why), set, ": output ", k, " '",
               g.outputs()[k]->name(), "': ", why);
    }
  }
}

}  // namespace

std::string caseOpType(const std::string& case_dir) {
  fs::path dir(case_dir);
  std::string name = dir.filename().string();
  const std::string suffix = "_expanded";
  if (name.size() > suffix.size() &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    onnx::ModelProto sib;
    fs::path sibling = dir.parent_path() / name.substr(0, name.size() - suffix.size());
    if (parseModel((sibling / "model.onnx").string(), &sib)) return modelOpType(sib);
  }
  onnx::ModelProto m;
  if (!parseModel((dir / "model.onnx").string(), &m)) return "(unreadable)";
  std::string op = modelOpType(m);
  return op.empty() ? "(none)" : op;
}

CaseResult runCase(const std::string& case_dir) {
  CaseResult r;
  fs::path dir(case_dir);
  r.name = dir.filename().string();
  auto t0 = std::chrono::steady_clock::now();
  auto done = [&](Status s, std::string msg) {
    r.status = s;
    r.message = firstLine(msg);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  std::unique_ptr<Graph> g;
  try {
    g = importOnnxFile((dir / "model.onnx").string());
  } catch (const std::exception& e) {
    return done(Status::Unsupported, std::string("import: ") + e.what());
  }
  std::unique_ptr<Executor> ex;
  try {
    ex = std::make_unique<Executor>(*g);
  } catch (const std::exception& e) {
    // "unsupported op" from the executor, or a kernel declaring a feature unsupported
    // (e.g. Cast to string); every other binding error is a failure.
    std::string m = e.what();
    bool unsup = m.find("unsupported op") != std::string::npos ||
                 m.find("not supported") != std::string::npos;
    return done(unsup ? Status::Unsupported : Status::Failed, m);
  }
  try {
    runDataSets(dir, *g, *ex);
  } catch (const Unsupported& e) {
    return done(Status::Unsupported, std::string("test data: ") + e.what());
  } catch (const c10::Error& e) {
    return done(Status::Failed, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return done(Status::Failed, e.what());
  }
  return done(Status::Passed, "");
}

namespace {

/// Child side of a batch: runs cases [first, end) and writes one line per finished case:
/// "<index>\t<status>\t<seconds>\t<message>\n". Never returns.
[[noreturn]] void runBatchChild(const std::vector<std::string>& dirs, size_t first, int fd,
                                int timeout_s) {
  for (size_t k = first; k < dirs.size(); ++k) {
    ::alarm(static_cast<unsigned>(timeout_s));  // SIGALRM's default action ends a hung case
    CaseResult c = runCase(dirs[k]);
    ::alarm(0);
    std::string line = std::to_string(k) + "\t" + std::to_string(static_cast<int>(c.status)) +
                       "\t" + std::to_string(c.seconds) + "\t" + c.message + "\n";
    size_t off = 0;
    while (off < line.size()) {
      ssize_t w = ::write(fd, line.data() + off, line.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) ::_exit(3);
      off += static_cast<size_t>(w);
    }
  }
  ::close(fd);
  ::_exit(0);  // skip static destructors / atexit handlers shared with the parent
}

/// Parses one result line from a batch child into `results`; returns the case index.
size_t parseResultLine(const std::string& line, std::vector<CaseResult>& results) {
  size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1), t3 = line.find('\t', t2 + 1);
  GS_ASSERT(t3 != std::string::npos, "malformed result line from a conformance child");
  size_t k = std::stoul(line.substr(0, t1));
  GS_ASSERT(k < results.size(), "result index out of range");
  results[k].status = static_cast<Status>(std::stoi(line.substr(t1 + 1, t2 - t1 - 1)));
  results[k].seconds = std::stod(line.substr(t2 + 1, t3 - t2 - 1));
  results[k].message = line.substr(t3 + 1);
  return k;
}

}  // namespace

std::vector<CaseResult> runCasesIsolated(const std::vector<std::string>& dirs, int timeout_s,
                                         const std::function<void(const CaseResult&)>& on_result) {
  std::vector<CaseResult> results(dirs.size());
  for (size_t k = 0; k < dirs.size(); ++k) results[k].name = fs::path(dirs[k]).filename().string();
  size_t next = 0;  // first case not yet reported
  while (next < dirs.size()) {
    int fds[2];
    GS_CHECK(::pipe(fds) == 0, "pipe failed: ", std::strerror(errno));
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      GS_FAIL("fork failed: ", std::strerror(errno));
    }
    if (pid == 0) {
      ::close(fds[0]);
      runBatchChild(dirs, next, fds[1], timeout_s);
    }
    ::close(fds[1]);
    std::string buf;
    char chunk[4096];
    while (true) {
      ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        size_t k = parseResultLine(buf.substr(0, nl), results);
        buf.erase(0, nl + 1);
        next = k + 1;
        t0 = std::chrono::steady_clock::now();
        if (on_result) on_result(results[k]);
      }
    }
    ::close(fds[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (next >= dirs.size()) break;
    // The child died while running case `next`: report it and continue after it.
    CaseResult& r = results[next];
    r.status = Status::Failed;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (WIFSIGNALED(st)) {
      int sig = WTERMSIG(st);
      r.message = sig == SIGALRM ? "timeout after " + std::to_string(timeout_s) + " s"
                                 : "crashed with signal " + std::to_string(sig) + " (" +
                                       strsignal(sig) + ")";
    } else {
      r.message = "child exited abnormally (status " + std::to_string(st) + ")";
    }
    if (on_result) on_result(r);
    ++next;
  }
  return results;
}

CaseResult runCaseIsolated(const std::string& case_dir, int timeout_s) {
  return runCasesIsolated({case_dir}, timeout_s)[0];
}

std::vector<std::string> listCases(const std::string& root) {
  std::error_code ec;
  GS_CHECK(fs::is_directory(root, ec), root, ": not a directory");
  std::vector<std::string> r;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) r.push_back(e.path().string());
  std::sort(r.begin(), r.end());
  return r;
}

namespace {
struct Counts {
  int passed = 0, failed = 0, unsupported = 0;
  void add(Status s) {
    (s == Status::Passed ? passed : s == Status::Failed ? failed : unsupported)++;
  }
  int total() const { return passed + failed + unsupported; }
};
}  // namespace

std::string summaryTable(const std::vector<CaseResult>& results) {
  std::map<std::string, Counts> per_op;
  Counts tot;
  for (const auto& r : results) {
    per_op[r.op_type].add(r.status);
    tot.add(r.status);
  }
  std::ostringstream os;
  os << std::left << std::setw(36) << "op" << std::right << std::setw(8) << "passed"
     << std::setw(8) << "failed" << std::setw(13) << "unsupported" << "\n";
  for (const auto& [op, c] : per_op)
    os << std::left << std::setw(36) << op << std::right << std::setw(8) << c.passed
       << std::setw(8) << c.failed << std::setw(13) << c.unsupported << "\n";
  os << std::left << std::setw(36) << "TOTAL" << std::right << std::setw(8) << tot.passed
     << std::setw(8) << tot.failed << std::setw(13) << tot.unsupported << "\n";
  os << tot.passed << "/" << tot.total() << " cases passed, " << tot.failed << " failed, "
     << tot.unsupported << " unsupported; " << per_op.size() << " op types\n";
  return os.str();
}

std::string summaryJson(const std::vector<CaseResult>& results) {
  nlohmann::json j;
  std::map<std::string, Counts> per_op;
  Counts tot;
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& r : results) {
    per_op[r.op_type].add(r.status);
    tot.add(r.status);
    cases.push_back({{"name", r.name},
                     {"op", r.op_type},
                     {"status", statusName(r.status)},
                     {"message", r.message},
                     {"seconds", r.seconds}});
  }
  j["total"] = tot.total();
  j["passed"] = tot.passed;
  j["failed"] = tot.failed;
  j["unsupported"] = tot.unsupported;
  for (const auto& [op, c] : per_op)
    j["ops"][op] = {{"passed", c.passed}, {"failed", c.failed}, {"unsupported", c.unsupported}};
  j["cases"] = std::move(cases);
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gs::conformance
