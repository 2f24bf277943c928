// Replay + mutation driver for fuzz targets when libFuzzer is not available (GS_FUZZ=OFF).
//
//   fuzz_x CORPUS_DIR [--runs N] [--seed S]
// replays every corpus file through LLVMFuzzerTestOneInput, then N deterministic random mutations
// (byte overwrites, bit flips, byte insert/delete, truncation, splice of two corpus files). A crash ends the
// process; an exception escaping the target is reported with the input saved to
// ./fuzz-failure-<run>.bin and exit status 1.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;

Bytes readAll(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// Runs one input; returns false (after reporting) if an exception escaped the target.
bool runOne(const Bytes& b, const std::string& label) {
  try {
    LLVMFuzzerTestOneInput(b.data(), b.size());
    return true;
  } catch (const std::exception& e) {
    std::cerr << "fuzz: unexpected exception on " << label << ": " << e.what() << "\n";
  } catch (...) {
    std::cerr << "fuzz: unexpected non-std exception on " << label << "\n";
  }
  std::string out = "fuzz-failure-" + std::to_string(std::hash<std::string>{}(label)) + ".bin";
  std::ofstream(out, std::ios::binary).write(reinterpret_cast<const char*>(b.data()),
                                             static_cast<std::streamsize>(b.size()));
  std::cerr << "fuzz: input saved to " << out << "\n";
  return false;
}

Bytes mutate(const std::vector<Bytes>& corpus, std::mt19937_64& rng) {
  static const uint8_t kInteresting[] = {0, 0xff, 0x7f, 0x80, 0x01, 0x10, 0x40, 0xfe};
  auto interesting = [&] { return kInteresting[rng() % sizeof(kInteresting)]; };
  Bytes b = corpus[rng() % corpus.size()];
  // Mostly one small edit: structured formats (protobuf, headers) survive it often enough for
  // the mutated value to reach the parser's semantic checks.
  int edits = rng() % 4 == 0 ? 2 + static_cast<int>(rng() % 3) : 1;
  for (int e = 0; e < edits; ++e) {
    unsigned op = static_cast<unsigned>(rng() % 20);
    if (op < 7) {  // overwrite one byte (random or interesting value)
      if (!b.empty()) b[rng() % b.size()] = rng() % 2 ? static_cast<uint8_t>(rng()) : interesting();
    } else if (op < 12) {  // bit flip
      if (!b.empty()) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    } else if (op < 14) {  // insert a byte
      b.insert(b.begin() + static_cast<long>(rng() % (b.size() + 1)), interesting());
    } else if (op < 16) {  // delete a short run
      if (!b.empty()) {
        size_t at = rng() % b.size();
        size_t n = std::min<size_t>(1 + rng() % 8, b.size() - at);
        b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n));
      }
    } else if (op < 18) {  // truncate
      if (!b.empty()) b.resize(rng() % b.size());
    } else {  // splice: prefix of this input + suffix of another corpus file
      const Bytes& o = corpus[rng() % corpus.size()];
      size_t cut = b.empty() ? 0 : rng() % b.size();
      size_t from = o.empty() ? 0 : rng() % o.size();
      b.resize(cut);
      b.insert(b.end(), o.begin() + static_cast<long>(from), o.end());
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  long runs = 1000;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::atol(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (dir.empty() && !a.empty() && a[0] != '-') dir = a;
    else {
      std::cerr << "usage: " << argv[0] << " CORPUS_DIR [--runs N] [--seed S]\n";
      return 2;
    }
  }
  if (dir.empty() || !std::filesystem::is_directory(dir)) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR [--runs N] [--seed S]\n";
    return 2;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<Bytes> corpus;
  for (const auto& f : files) {
    corpus.push_back(readAll(f));
    if (!runOne(corpus.back(), f.string())) return 1;
  }
  if (corpus.empty()) corpus.push_back({});
  std::mt19937_64 rng(seed);
  for (long r = 0; r < runs; ++r)
    if (!runOne(mutate(corpus, rng), "mutation " + std::to_string(r) + " (seed " +
                                          std::to_string(seed) + ")"))
      return 1;
  std::cout << "fuzz: " << files.size() << " corpus files + " << runs
            << " mutations, no unexpected exception\n";
  return 0;
}
