// Text corpus for language models: the built-in corpus (reStructuredText sources of the Debian
// package python3.11-doc) or a user's UTF-8 file, normalised and split 90/5/5 by byte ranges.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gs {

/// Contiguous train / validation / test byte ranges of a corpus.
enum class TextSplit { Train, Validation, Test };

/// Parses "train" / "validation" (or "val", "valid") / "test"; throws gs::Error otherwise.
TextSplit parseTextSplit(const std::string& s);
/// "train", "validation" or "test".
std::string textSplitName(TextSplit s);

/// A whole corpus as bytes plus its fixed split boundaries. The splits are the contiguous ranges
/// [0, trainEnd), [trainEnd, validEnd), [validEnd, size) with trainEnd = floor(size * 90 / 100)
/// and validEnd = floor(size * 95 / 100) in integer arithmetic, so they depend only on the
/// corpus bytes (never on the machine, locale or run).
struct TextCorpus {
  std::string name;       ///< e.g. "text (python3.11-doc, 497 files)" or "text:FILE"
  std::string bytes;      ///< the normalised, concatenated corpus
  int64_t numFiles = 0;   ///< source files concatenated
  int64_t trainEnd = 0;   ///< end of the train range (exclusive)
  int64_t validEnd = 0;   ///< end of the validation range (exclusive)

  int64_t size() const { return static_cast<int64_t>(bytes.size()); }
  /// The bytes of one split.
  std::string split(TextSplit s) const;
  /// Byte count of one split.
  int64_t splitSize(TextSplit s) const;
  /// FNV-1a 64-bit hash of `bytes` as 16 hex digits (identifies the corpus in reports).
  std::string fingerprint() const;
  /// "text (...): 12345 bytes, train 11110 / validation 617 / test 618, fnv1a 0123..."
  std::string describe() const;
};

/// Directory of the built-in corpus: $GS_TEXT_CORPUS_DIR if set, else
/// /usr/share/doc/python3.11/html/_sources (Debian 12 package python3.11-doc).
std::string defaultTextCorpusDir();

/// Minimal normalisation applied to every source file (documented in docs/data.md):
/// CRLF and lone CR become LF; trailing spaces/tabs are removed from every line; lines made only
/// of one repeated reST section-adornment character (e.g. "=====", "-----", "~~~~", at least 3)
/// are dropped; runs of more than one blank line collapse to one; leading/trailing blank lines are
/// removed. All other bytes (including UTF-8 multi-byte sequences) are kept unchanged.
std::string normalizeText(const std::string& text);

/// Splits `bytes` into a TextCorpus (computes the 90/5/5 boundaries). Throws gs::Error if the
/// corpus is shorter than 20 bytes (every split must be non-empty).
TextCorpus makeTextCorpus(std::string name, std::string bytes, int64_t numFiles);

/// The built-in corpus: every regular file under `dir` (default defaultTextCorpusDir()) whose name
/// ends in ".rst.txt", in bytewise-sorted order of relative path, each normalised, joined with
/// "\n\n". Throws gs::Error naming the package and scripts/install-deps.sh when the directory is
/// missing or holds no such file.
TextCorpus loadBuiltinTextCorpus(const std::string& dir = "");

/// A user's UTF-8 file, normalised with normalizeText and split the same way.
TextCorpus loadTextFileCorpus(const std::string& path);

/// Opens a text data spec: "text" (built-in corpus) or "text:FILE". Throws gs::Error quoting the
/// spec for anything else.
TextCorpus openTextCorpus(const std::string& spec);

/// Whether `spec` is a text data spec ("text" or "text:...").
bool isTextDataSpec(const std::string& spec);

}  // namespace gs
