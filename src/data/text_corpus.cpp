// Text corpus loading, normalisation and fixed 90/5/5 byte-range splits (see text_corpus.h).
#include "data/text_corpus.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "support/error.h"
#include "support/file_util.h"

namespace gs {

namespace fs = std::filesystem;

TextSplit parseTextSplit(const std::string& s) {
  if (s == "train") return TextSplit::Train;
  if (s == "validation" || s == "val" || s == "valid") return TextSplit::Validation;
  if (s == "test") return TextSplit::Test;
  GS_FAIL("unknown text split '", s, "' (expected train, validation or test)");
}

std::string textSplitName(TextSplit s) {
  switch (s) {
    case TextSplit::Train: return "train";
    case TextSplit::Validation: return "validation";
    case TextSplit::Test: return "test";
  }
  return "?";
}

std::string TextCorpus::split(TextSplit s) const {
  switch (s) {
    case TextSplit::Train: return bytes.substr(0, static_cast<size_t>(trainEnd));
    case TextSplit::Validation:
      return bytes.substr(static_cast<size_t>(trainEnd), static_cast<size_t>(validEnd - trainEnd));
    case TextSplit::Test: return bytes.substr(static_cast<size_t>(validEnd));
  }
  return {};
}

int64_t TextCorpus::splitSize(TextSplit s) const {
  switch (s) {
    case TextSplit::Train: return trainEnd;
    case TextSplit::Validation: return validEnd - trainEnd;
    case TextSplit::Test: return size() - validEnd;
  }
  return 0;
}

std::string TextCorpus::fingerprint() const {
  uint64_t h = 14695981039346656037ull;  // FNV-64 offset basis
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string TextCorpus::describe() const {
  std::ostringstream os;
  os << name << ": " << size() << " bytes, train " << splitSize(TextSplit::Train)
     << " / validation " << splitSize(TextSplit::Validation) << " / test "
     << splitSize(TextSplit::Test) << ", fnv1a " << fingerprint();
  return os.str();
}

std::string defaultTextCorpusDir() {
  const char* env = std::getenv("GS_TEXT_CORPUS_DIR");
  if (env && *env) return env;
  return "/usr/share/doc/python3.11/html/_sources";
}

namespace {

// A reST section adornment: >= 3 copies of one punctuation character and nothing else.
bool isAdornmentLine(const std::string& line) {
  if (line.size() < 3) return false;
  static const std::string kAdorn = "=-~^\"'`#*+_:.";
  char c = line[0];
  if (kAdorn.find(c) == std::string::npos) return false;
  return std::all_of(line.begin(), line.end(), [c](char x) { return x == c; });
}

}  // namespace

std::string normalizeText(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t blank_run = 0;  // blank lines seen since the last non-blank line
  bool any = false;      // a non-blank line was emitted
  size_t i = 0;
  while (i <= text.size()) {
    // Extract one line, treating CRLF, CR and LF as terminators.
    size_t j = i;
    while (j < text.size() && text[j] != '\n' && text[j] != '\r') ++j;
    std::string line = text.substr(i, j - i);
    if (j < text.size() && text[j] == '\r' && j + 1 < text.size() && text[j + 1] == '\n') ++j;
    i = j + 1;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (isAdornmentLine(line)) continue;
    if (line.empty()) {
      ++blank_run;
      continue;
    }
    if (any) out += blank_run > 0 ? "\n\n" : "\n";
    out += line;
    any = true;
    blank_run = 0;
  }
  return out;
}

TextCorpus makeTextCorpus(std::string name, std::string bytes, int64_t numFiles) {
  GS_CHECK(bytes.size() >= 20, name, ": corpus has ", bytes.size(),
           " bytes after normalisation; need at least 20 for non-empty 90/5/5 splits");
  TextCorpus c;
  c.name = std::move(name);
  c.bytes = std::move(bytes);
  c.numFiles = numFiles;
  // Integer arithmetic only: the boundaries are a pure function of the byte count.
  c.trainEnd = c.size() * 90 / 100;
  c.validEnd = c.size() * 95 / 100;
  return c;
}

TextCorpus loadBuiltinTextCorpus(const std::string& dirArg) {
  const std::string dir = dirArg.empty() ? defaultTextCorpusDir() : dirArg;
  const std::string hint = " (the built-in text corpus is the reStructuredText sources of the "
                           "Debian package python3.11-doc: run scripts/install-deps.sh or "
                           "`apt-get install python3.11-doc`, or set GS_TEXT_CORPUS_DIR)";
  std::error_code ec;
  GS_CHECK(fs::is_directory(dir, ec), "text corpus directory ", dir, " not found", hint);
  std::vector<std::string> rel;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::string p = it->path().lexically_relative(dir).generic_string();
    if (p.size() > 8 && p.compare(p.size() - 8, 8, ".rst.txt") == 0) rel.push_back(p);
  }
  GS_CHECK(!ec, "text corpus directory ", dir, ": ", ec.message());
  GS_CHECK(!rel.empty(), "text corpus directory ", dir, " holds no *.rst.txt files", hint);
  // std::string's operator< compares bytes (char_traits<char>), independent of the locale.
  std::sort(rel.begin(), rel.end());
  std::string all;
  for (const std::string& r : rel) {
    std::string t = normalizeText(readFile((fs::path(dir) / r).string()));
    if (t.empty()) continue;
    if (!all.empty()) all += "\n\n";
    all += t;
  }
  return makeTextCorpus("text (python3.11-doc, " + std::to_string(rel.size()) + " files)",
                        std::move(all), static_cast<int64_t>(rel.size()));
}

TextCorpus loadTextFileCorpus(const std::string& path) {
  std::error_code ec;
  GS_CHECK(fs::is_regular_file(path, ec), "text file ", path, " not found");
  return makeTextCorpus("text:" + path, normalizeText(readFile(path)), 1);
}

bool isTextDataSpec(const std::string& spec) {
  return spec == "text" || spec.rfind("text:", 0) == 0;
}

TextCorpus openTextCorpus(const std::string& spec) {
  GS_CHECK(isTextDataSpec(spec), "bad text data spec '", spec,
           "' (expected 'text' for the built-in corpus or 'text:FILE')");
  if (spec == "text") return loadBuiltinTextCorpus();
  std::string path = spec.substr(5);
  GS_CHECK(!path.empty(), "bad text data spec '", spec, "': missing FILE after 'text:'");
  return loadTextFileCorpus(path);
}

}  // namespace gs
