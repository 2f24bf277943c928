// IR text parser (see ir/text.h for the grammar): a character-level recursive-descent parser
// that reports "<source>:<line>:<col>: message" for every malformed input.
#include <ATen/ATen.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "ir/text.h"
#include "ir/text_syntax.h"
#include "support/error.h"

namespace gs {

namespace {

/// Dimensions of tensor literals above this are refused (keeps stride arithmetic far from
/// overflow even for zero-element tensors).
constexpr int64_t kMaxLiteralDim = int64_t{1} << 40;
/// Rank limit for tensor literals (ATen's TensorIterator kernels are not meant for huge ranks).
constexpr size_t kMaxLiteralRank = 64;

/// One element token of a tensor literal (offsets into the source text).
struct ElemTok {
  size_t pos, len;
  size_t pos2 = 0, len2 = 0;  // imaginary part of complex elements
};

class Parser {
 public:
  Parser(std::string_view s, const std::string& source) : s_(s), source_(source) {}

  std::unique_ptr<Graph> parse() {
    g_ = std::make_unique<Graph>();
    g_->opsets.clear();
    skipWsNl();
    size_t p = pos_;
    if (word() != "graph") failAt(p, "expected 'graph'");
    skipWs();
    g_->name = peek() == '"' ? parseString() : parseBare(text::isNameChar, "a graph name");
    expect('{');
    for (;;) {
      skipWsNl();
      if (atEof()) failAt(pos_, "missing '}' at end of graph");
      if (peek() == '}') {
        ++pos_;
        break;
      }
      statement();
    }
    skipWsNl();
    if (!atEof()) failAt(pos_, "unexpected text after the end of the graph");
    return std::move(g_);
  }

 private:
  // ---------------- errors ----------------
  template <typename... Args>
  [[noreturn]] void failAt(size_t pos, const Args&... args) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    GS_FAIL(source_, ":", line, ":", col, ": ", args...);
  }

  // ---------------- characters ----------------
  bool atEof() const { return pos_ >= s_.size(); }
  int peek(size_t ahead = 0) const {
    return pos_ + ahead < s_.size() ? static_cast<unsigned char>(s_[pos_ + ahead]) : -1;
  }
  static bool isAlpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
  static bool isDigit(int c) { return c >= '0' && c <= '9'; }
  static bool isWordChar(int c) { return isAlpha(c) || isDigit(c) || c == '_'; }

  /// Skips blanks and comments on the current line.
  void skipWs() {
    while (!atEof()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (!atEof() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  /// Skips blanks, comments and newlines (inside brackets and between statements).
  void skipWsNl() {
    for (;;) {
      skipWs();
      if (!atEof() && s_[pos_] == '\n')
        ++pos_;
      else
        break;
    }
  }
  std::string describeChar() const {
    if (atEof()) return "end of input";
    int c = peek();
    if (c == '\n') return "end of line";
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", c);
    return std::string("byte ") + buf;
  }
  void expect(char c) {
    skipWs();
    if (peek() != static_cast<unsigned char>(c))
      failAt(pos_, "expected '", c, "', found ", describeChar());
    ++pos_;
  }
  bool tryConsume(char c) {
    skipWs();
    if (peek() != static_cast<unsigned char>(c)) return false;
    ++pos_;
    return true;
  }
  void endOfStatement() {
    skipWs();
    if (atEof()) return;
    if (peek() != '\n') failAt(pos_, "expected end of line, found ", describeChar());
    ++pos_;
  }

  // ---------------- tokens ----------------
  /// [A-Za-z0-9_]* (keywords, dtypes); may be empty.
  std::string_view word() {
    skipWs();
    size_t b = pos_;
    while (isWordChar(peek())) ++pos_;
    return s_.substr(b, pos_ - b);
  }

  std::string parseString() {
    size_t start = pos_;
    if (peek() != '"') failAt(pos_, "expected a string, found ", describeChar());
    ++pos_;
    std::string out;
    for (;;) {
      if (atEof() || peek() == '\n') failAt(start, "unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (atEof()) failAt(start, "unterminated string");
      size_t esc = pos_ - 1;
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'x': {
          int v = 0;
          for (int k = 0; k < 2; ++k) {
            int h = peek();
            int d = isDigit(h)               ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (d < 0) failAt(esc, "bad \\x escape (two hex digits expected)");
            v = v * 16 + d;
            ++pos_;
          }
          out += static_cast<char>(v);
          break;
        }
        default: failAt(esc, "unknown escape sequence '\\", e, "'");
      }
    }
  }

  template <typename Pred>
  std::string parseBare(Pred ok, const char* what) {
    size_t b = pos_;
    while (!atEof() && ok(s_[pos_])) ++pos_;
    if (pos_ == b) failAt(b, "expected ", what, ", found ", describeChar());
    return std::string(s_.substr(b, pos_ - b));
  }

  /// Value / node / attribute name: quoted or bare; a bare name never ends with ':'.
  std::string parseName(const char* what) {
    skipWs();
    size_t b = pos_;
    std::string n;
    if (peek() == '"') {
      n = parseString();
    } else {
      while (!atEof() && text::isNameChar(s_[pos_])) ++pos_;
      while (pos_ > b && s_[pos_ - 1] == ':') --pos_;
      n = std::string(s_.substr(b, pos_ - b));
    }
    if (n.empty()) failAt(b, "expected ", what, ", found ", describeChar());
    return n;
  }

  std::string parseOpName(const char* what) {
    skipWs();
    size_t b = pos_;
    std::string n = peek() == '"' ? parseString() : parseBare(text::isOpChar, what);
    if (n.empty()) failAt(b, "empty ", what);
    return n;
  }

  /// `%name` after the '%' has been seen.
  std::string parseValueRef() {
    expect('%');
    return parseName("a value name");
  }

  int64_t parseInt(const char* what) {
    skipWs();
    size_t b = pos_;
    if (peek() == '-') ++pos_;
    while (isDigit(peek())) ++pos_;
    int64_t v = 0;
    auto r = std::from_chars(s_.data() + b, s_.data() + pos_, v);
    if (r.ec == std::errc::result_out_of_range) failAt(b, what, " out of range");
    if (r.ec != std::errc() || r.ptr != s_.data() + pos_) failAt(b, "expected ", what);
    return v;
  }

  /// dtype followed by `[dims]` or `[*]`.
  std::pair<DType, Shape> parseType() {
    skipWs();
    size_t b = pos_;
    std::string_view w = word();
    DType t;
    if (w.empty()) failAt(b, "expected a type, found ", describeChar());
    if (!parseDType(w, &t)) failAt(b, "unknown dtype '", w, "'");
    expect('[');
    if (tryConsume('*')) {
      expect(']');
      return {t, std::nullopt};
    }
    std::vector<Dim> dims;
    if (tryConsume(']')) return {t, dims};
    for (;;) {
      skipWs();
      size_t d = pos_;
      int c = peek();
      if (c == '?') {
        ++pos_;
        dims.emplace_back();
      } else if (c == '"') {
        std::string sym = parseString();
        dims.push_back(sym.empty() ? Dim() : Dim(std::move(sym)));
      } else if (isDigit(c) || c == '-') {
        int64_t v = parseInt("a dimension");
        if (v < 0) failAt(d, "dimension must be >= 0, got ", v);
        dims.emplace_back(v);
      } else if (isAlpha(c) || c == '_') {
        dims.emplace_back(std::string(word()));
      } else {
        failAt(d, "expected a dimension, found ", describeChar());
      }
      skipWs();
      if (tryConsume(']')) break;
      if (!tryConsume(',')) failAt(pos_, "expected ',' or ']' in shape, found ", describeChar());
    }
    return {t, std::move(dims)};
  }

  // ---------------- tensor literals ----------------
  static bool isElemChar(int c) { return isWordChar(c) || c == '.' || c == '+' || c == '-'; }

  size_t elemToken(size_t* len) {
    skipWsNl();
    size_t b = pos_;
    while (isElemChar(peek())) ++pos_;
    if (pos_ == b) failAt(b, "expected a tensor element, found ", describeChar());
    *len = pos_ - b;
    return b;
  }

  template <typename F>
  F toFloat(size_t pos, size_t len, const char* tname) const {
    std::string_view t = s_.substr(pos, len);
    if (t == "nan" || t == "-nan") return std::numeric_limits<F>::quiet_NaN();
    if (t == "inf") return std::numeric_limits<F>::infinity();
    if (t == "-inf") return -std::numeric_limits<F>::infinity();
    F v{};
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (r.ec == std::errc::result_out_of_range)
      failAt(pos, "value '", t, "' out of range for ", tname);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size() || std::isnan(v) || std::isinf(v))
      failAt(pos, "bad ", tname, " value '", t, "'");
    return v;
  }

  int64_t toInt(size_t pos, size_t len, int64_t lo, int64_t hi, const char* tname) const {
    std::string_view t = s_.substr(pos, len);
    int64_t v = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (r.ec == std::errc() && r.ptr == t.data() + t.size()) {
      if (v < lo || v > hi) failAt(pos, "value ", v, " out of range for ", tname);
      return v;
    }
    if (r.ec == std::errc::result_out_of_range)
      failAt(pos, "value '", t, "' out of range for ", tname);
    failAt(pos, "bad ", tname, " value '", t, "'");
  }

  template <typename T, typename Conv>
  void fill(at::Tensor& t, const std::vector<ElemTok>& toks, Conv conv) {
    T* p = t.data_ptr<T>();
    for (size_t i = 0; i < toks.size(); ++i) p[i] = conv(toks[i]);
  }

  /// `tensor<dtype[dims]>[e0, e1, ...]` (the word `tensor` already consumed).
  at::Tensor parseTensor() {
    expect('<');
    skipWs();
    size_t tpos = pos_;
    auto [dt, shape] = parseType();
    expect('>');
    switch (dt) {
      case DType::Float32:
      case DType::Float64:
      case DType::Float16:
      case DType::BFloat16:
      case DType::Int8:
      case DType::UInt8:
      case DType::Int16:
      case DType::Int32:
      case DType::Int64:
      case DType::Bool:
      case DType::Complex64:
      case DType::Complex128: break;
      default:
        failAt(tpos, "tensor literals of element type ", dtypeName(dt), " are not supported");
    }
    if (!shape) failAt(tpos, "tensor literal needs a known rank");
    if (shape->size() > kMaxLiteralRank)
      failAt(tpos, "tensor literal rank ", shape->size(), " exceeds ", kMaxLiteralRank);
    std::vector<int64_t> sizes;
    int64_t numel = 1;
    for (const Dim& d : *shape) {
      if (!d.isStatic()) failAt(tpos, "tensor literal dimensions must be static");
      if (d.value > kMaxLiteralDim)
        failAt(tpos, "tensor literal dimension ", d.value, " is too large");
      sizes.push_back(d.value);
      if (numel != 0 && d.value > 0 && numel > std::numeric_limits<int64_t>::max() / d.value)
        failAt(tpos, "tensor literal has too many elements");
      numel *= d.value;
    }
    skipWs();
    if (s_.substr(pos_, 3) == "...")
      failAt(pos_, "tensor data was elided (printed with tensor_data=false)");
    expect('[');
    // Every element takes at least one character plus a separator: refuse before allocating.
    size_t remaining = s_.size() - pos_;
    if (numel > 0 && static_cast<uint64_t>(numel) > remaining / 2 + 1)
      failAt(tpos, "tensor literal declares ", numel, " elements but the text is too short");
    bool cplx = dt == DType::Complex64 || dt == DType::Complex128;
    std::vector<ElemTok> toks;
    toks.reserve(static_cast<size_t>(numel));
    skipWsNl();
    if (peek() == ']') {
      ++pos_;
    } else {
      for (;;) {
        ElemTok e{};
        if (cplx) {
          skipWsNl();
          if (peek() != '(')
            failAt(pos_, "expected '(' for a complex element, found ", describeChar());
          ++pos_;
          e.pos = elemToken(&e.len);
          skipWsNl();
          if (peek() != ',')
            failAt(pos_, "expected ',' in complex element, found ", describeChar());
          ++pos_;
          e.pos2 = elemToken(&e.len2);
          skipWsNl();
          if (peek() != ')')
            failAt(pos_, "expected ')' after complex element, found ", describeChar());
          ++pos_;
        } else {
          e.pos = elemToken(&e.len);
        }
        if (static_cast<int64_t>(toks.size()) >= numel)
          failAt(e.pos, "tensor literal has more than the ", numel, " elements its shape declares");
        toks.push_back(e);
        skipWsNl();
        if (peek() == ']') {
          ++pos_;
          break;
        }
        if (peek() != ',')
          failAt(pos_, "expected ',' or ']' in tensor literal, found ", describeChar());
        ++pos_;
      }
    }
    if (static_cast<int64_t>(toks.size()) != numel)
      failAt(tpos, "tensor literal of shape ", typeString(dt, shape), " needs ", numel,
             " elements, got ", toks.size());
    at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(toScalarType(dt)));
    switch (dt) {
      case DType::Float32:
        fill<float>(t, toks, [&](const ElemTok& e) { return toFloat<float>(e.pos, e.len, "f32"); });
        break;
      case DType::Float64:
        fill<double>(t, toks,
                     [&](const ElemTok& e) { return toFloat<double>(e.pos, e.len, "f64"); });
        break;
      case DType::Float16:
        fill<at::Half>(t, toks, [&](const ElemTok& e) {
          return at::Half(toFloat<float>(e.pos, e.len, "f16"));
        });
        break;
      case DType::BFloat16:
        fill<at::BFloat16>(t, toks, [&](const ElemTok& e) {
          return at::BFloat16(toFloat<float>(e.pos, e.len, "bf16"));
        });
        break;
      case DType::Int8:
        fill<int8_t>(t, toks, [&](const ElemTok& e) {
          return static_cast<int8_t>(toInt(e.pos, e.len, -128, 127, "i8"));
        });
        break;
      case DType::UInt8:
        fill<uint8_t>(t, toks, [&](const ElemTok& e) {
          return static_cast<uint8_t>(toInt(e.pos, e.len, 0, 255, "u8"));
        });
        break;
      case DType::Int16:
        fill<int16_t>(t, toks, [&](const ElemTok& e) {
          return static_cast<int16_t>(toInt(e.pos, e.len, -32768, 32767, "i16"));
        });
        break;
      case DType::Int32:
        fill<int32_t>(t, toks, [&](const ElemTok& e) {
          return static_cast<int32_t>(toInt(e.pos, e.len, std::numeric_limits<int32_t>::min(),
                                            std::numeric_limits<int32_t>::max(), "i32"));
        });
        break;
      case DType::Int64:
        fill<int64_t>(t, toks, [&](const ElemTok& e) {
          return toInt(e.pos, e.len, std::numeric_limits<int64_t>::min(),
                       std::numeric_limits<int64_t>::max(), "i64");
        });
        break;
      case DType::Bool:
        fill<bool>(t, toks, [&](const ElemTok& e) {
          std::string_view w = s_.substr(e.pos, e.len);
          if (w == "true" || w == "1") return true;
          if (w == "false" || w == "0") return false;
          failAt(e.pos, "bad bool value '", w, "' (true or false expected)");
        });
        break;
      case DType::Complex64:
        fill<c10::complex<float>>(t, toks, [&](const ElemTok& e) {
          return c10::complex<float>(toFloat<float>(e.pos, e.len, "c64"),
                                     toFloat<float>(e.pos2, e.len2, "c64"));
        });
        break;
      case DType::Complex128:
        fill<c10::complex<double>>(t, toks, [&](const ElemTok& e) {
          return c10::complex<double>(toFloat<double>(e.pos, e.len, "c128"),
                                      toFloat<double>(e.pos2, e.len2, "c128"));
        });
        break;
      default: failAt(tpos, "unsupported tensor element type");
    }
    return t;
  }

  // ---------------- attributes ----------------
  enum class ListKind { Any, Ints, Floats, Strings };

  /// A numeric token (int, float, inf, nan) at the cursor; `is_int` tells which.
  std::string_view numberToken(size_t* at, bool* is_int) {
    skipWs();
    *at = pos_;
    while (isElemChar(peek())) ++pos_;
    std::string_view t = s_.substr(*at, pos_ - *at);
    if (t.empty()) failAt(*at, "expected an attribute value, found ", describeChar());
    size_t k = (t[0] == '-') ? 1 : 0;
    *is_int = k < t.size();
    for (size_t i = k; i < t.size(); ++i)
      if (!isDigit(t[i])) *is_int = false;
    return t;
  }

  Attribute parseList(ListKind kind) {
    size_t open = pos_;
    expect('[');
    std::vector<std::string> strs;
    std::vector<std::pair<size_t, size_t>> nums;  // (pos, len)
    bool any_float = false;
    skipWsNl();
    if (peek() != ']') {
      for (;;) {
        skipWsNl();
        if (peek() == '"') {
          if (!nums.empty()) failAt(pos_, "list mixes strings and numbers");
          strs.push_back(parseString());
        } else {
          if (!strs.empty()) failAt(pos_, "list mixes strings and numbers");
          size_t at;
          bool is_int;
          std::string_view t = numberToken(&at, &is_int);
          if (!is_int) any_float = true;
          nums.emplace_back(at, t.size());
        }
        skipWsNl();
        if (peek() == ']') break;
        if (peek() != ',') failAt(pos_, "expected ',' or ']' in list, found ", describeChar());
        ++pos_;
      }
    }
    ++pos_;  // ']'
    if (strs.empty() && nums.empty()) {
      switch (kind) {
        case ListKind::Any:
          failAt(open, "an empty list needs its kind: write ints[], floats[] or strings[]");
        case ListKind::Ints: return std::vector<int64_t>{};
        case ListKind::Floats: return std::vector<float>{};
        case ListKind::Strings: return std::vector<std::string>{};
      }
    }
    if (!strs.empty()) {
      if (kind != ListKind::Any && kind != ListKind::Strings) failAt(open, "list holds strings");
      return strs;
    }
    if (kind == ListKind::Strings) failAt(open, "strings[] list holds numbers");
    if (kind == ListKind::Floats || any_float) {
      if (kind == ListKind::Ints) failAt(open, "ints[] list holds a non-integer");
      std::vector<float> f;
      for (auto [p, l] : nums) f.push_back(toFloat<float>(p, l, "float"));
      return f;
    }
    std::vector<int64_t> v;
    for (auto [p, l] : nums)
      v.push_back(toInt(p, l, std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max(), "int"));
    return v;
  }

  Attribute parseAttrValue() {
    skipWs();
    int c = peek();
    if (c == '"') return parseString();
    if (c == '[') return parseList(ListKind::Any);
    if (isAlpha(c)) {
      size_t b = pos_;
      std::string_view w = word();
      if (w == "tensor") return parseTensor();
      if (w == "ints") return parseList(ListKind::Ints);
      if (w == "floats") return parseList(ListKind::Floats);
      if (w == "strings") return parseList(ListKind::Strings);
      if (w == "inf") return std::numeric_limits<float>::infinity();
      if (w == "nan") return std::numeric_limits<float>::quiet_NaN();
      failAt(b, "unexpected '", w, "' as attribute value");
    }
    size_t at;
    bool is_int;
    std::string_view t = numberToken(&at, &is_int);
    if (is_int)
      return toInt(at, t.size(), std::numeric_limits<int64_t>::min(),
                   std::numeric_limits<int64_t>::max(), "int");
    return toFloat<float>(at, t.size(), "float");
  }

  // ---------------- statements ----------------
  void checkNewValueName(const std::string& n, size_t pos) {
    if (g_->findValue(n)) failAt(pos, "duplicate value name %", text::nameText(n));
  }

  Value* lookup(const std::string& n, size_t pos) {
    Value* v = g_->findValue(n);
    if (!v) failAt(pos, "unknown value %", text::nameText(n));
    return v;
  }

  void statement() {
    skipWs();
    size_t b = pos_;
    int c = peek();
    if (c == '%' || c == '_' || c == '(') return nodeStatement();
    std::string_view w = word();
    if (w == "opset") {
      skipWs();
      size_t p = pos_;
      std::string dom = peek() == '"' ? parseString() : parseBare(text::isOpChar, "a domain");
      int64_t ver = parseInt("an opset version");
      if (g_->opsets.count(dom)) failAt(p, "duplicate opset for domain ", text::quote(dom));
      g_->opsets[dom] = ver;
    } else if (w == "input") {
      skipWs();
      size_t p = pos_;
      std::string n = parseValueRef();
      DType t = DType::Undefined;
      Shape s;
      if (tryConsume(':')) std::tie(t, s) = parseType();
      checkNewValueName(n, p);
      g_->addInput(n, t, std::move(s));
    } else if (w == "param") {
      skipWs();
      bool trainable = true;
      if (isAlpha(peek())) {
        size_t f = pos_;
        if (word() != "frozen") failAt(f, "expected 'frozen' or a parameter name");
        trainable = false;
      }
      skipWs();
      size_t p = pos_;
      std::string n = parseValueRef();
      expect(':');
      skipWs();
      size_t tp = pos_;
      auto [t, s] = parseType();
      expect('=');
      skipWs();
      size_t lp = pos_;
      if (word() != "tensor") failAt(lp, "expected a tensor literal");
      at::Tensor data = parseTensor();
      DType dt = fromScalarType(data.scalar_type());
      if (dt != t)
        failAt(tp, "parameter %", text::nameText(n), " is declared ", dtypeName(t),
               " but its tensor is ", dtypeName(dt));
      if (s) {
        bool ok = static_cast<int64_t>(s->size()) == data.dim();
        for (size_t i = 0; ok && i < s->size(); ++i)
          if ((*s)[i].isStatic() && (*s)[i].value != data.size(static_cast<int64_t>(i))) ok = false;
        if (!ok)
          failAt(tp, "parameter %", text::nameText(n), " is declared ", typeString(t, s),
                 " but its tensor has shape ", typeString(dt, shapeOf(data)));
      }
      checkNewValueName(n, p);
      Value* v = g_->addParam(n, std::move(data), trainable);
      v->setShape(std::move(s));
    } else if (w == "output") {
      skipWs();
      size_t p = pos_;
      std::string n = parseValueRef();
      g_->addOutput(lookup(n, p));
    } else {
      failAt(b, "expected a statement (opset, input, param, output or a node), found ",
             w.empty() ? describeChar() : "'" + std::string(w) + "'");
    }
    endOfStatement();
  }

  void nodeStatement() {
    struct Out {
      std::string name;
      DType t = DType::Undefined;
      Shape s;
    };
    std::vector<Out> outs;
    std::set<std::string> seen;
    skipWs();
    if (tryConsume('(')) {
      expect(')');
    } else {
      for (;;) {
        skipWs();
        size_t p = pos_;
        Out o;
        if (peek() == '_' && !text::isNameChar(static_cast<char>(peek(1)))) {
          ++pos_;
        } else {
          o.name = parseValueRef();
          if (tryConsume(':')) std::tie(o.t, o.s) = parseType();
          checkNewValueName(o.name, p);
          if (!seen.insert(o.name).second)
            failAt(p, "duplicate value name %", text::nameText(o.name));
        }
        outs.push_back(std::move(o));
        skipWs();
        if (peek() == '=') break;
        if (peek() != ',')
          failAt(pos_, "expected ',' or '=' after node outputs, found ", describeChar());
        ++pos_;
      }
    }
    expect('=');
    skipWs();
    size_t op_pos = pos_;
    std::string domain, op = parseOpName("an op type");
    if (peek() == ':' && peek(1) == ':') {
      pos_ += 2;
      domain = std::move(op);
      op = parseOpName("an op type");
    }
    expect('(');
    std::vector<Value*> ins;
    skipWsNl();
    if (peek() == ')') {
      ++pos_;
    } else {
      for (;;) {
        skipWsNl();
        size_t p = pos_;
        if (peek() == '_' && !text::isNameChar(static_cast<char>(peek(1)))) {
          ++pos_;
          ins.push_back(nullptr);
        } else {
          if (peek() != '%')
            failAt(p, "expected '%name' or '_' as node input, found ", describeChar());
          ins.push_back(lookup(parseValueRef(), p));
        }
        skipWsNl();
        if (peek() == ')') {
          ++pos_;
          break;
        }
        if (peek() != ',')
          failAt(pos_, "expected ',' or ')' after node input, found ", describeChar());
        ++pos_;
      }
    }
    std::string name;
    skipWs();
    size_t name_pos = pos_;
    if (tryConsume('@')) {
      name = parseName("a node name");
      if (g_->findNode(name)) failAt(name_pos, "duplicate node name @", text::nameText(name));
    } else {
      name = freshNodeName(op);
    }
    std::map<std::string, Attribute> attrs;
    if (tryConsume('{')) {
      skipWsNl();
      if (peek() == '}') {
        ++pos_;
      } else {
        for (;;) {
          skipWsNl();
          size_t kp = pos_;
          std::string k = parseName("an attribute name");
          expect('=');
          Attribute a = parseAttrValue();
          if (!attrs.emplace(k, std::move(a)).second) failAt(kp, "duplicate attribute '", k, "'");
          skipWsNl();
          if (peek() == '}') {
            ++pos_;
            break;
          }
          if (peek() != ',')
            failAt(pos_, "expected ',' or '}' after attribute, found ", describeChar());
          ++pos_;
        }
      }
    }
    endOfStatement();
    std::vector<std::string> names;
    for (const Out& o : outs) names.push_back(o.name);
    Node* n;
    try {
      n = g_->addNodeNamedOutputs(op, ins, names, name, std::move(attrs), nullptr, domain);
    } catch (const Error& e) {
      failAt(op_pos, e.what());
    }
    for (size_t k = 0; k < outs.size(); ++k)
      if (Value* v = n->output(k)) {
        v->setDType(outs[k].t);
        v->setShape(std::move(outs[k].s));
      }
  }

  std::string_view s_;
  std::string source_;
  size_t pos_ = 0;
  std::unique_ptr<Graph> g_;
  /// Next suffix to try per op type, so that many unnamed nodes cost O(n), not O(n^2).
  std::map<std::string, int> next_suffix_;

  /// `op`, `op_1`, `op_2`, ... (the Graph::uniqueNodeName scheme), first one not taken.
  std::string freshNodeName(const std::string& op) {
    int& k = next_suffix_[op];
    for (;; ++k) {
      std::string cand = k == 0 ? op : op + "_" + std::to_string(k);
      if (!g_->findNode(cand)) return cand;
    }
  }
};

}  // namespace

std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& source) {
  return Parser(text, source).parse();
}

}  // namespace gs
