// ONNX import/export (libonnx protobuf): opsets 9-17 normalised to opset-17 semantics.
#pragma once
#include <memory>
#include <string>

#include "ir/graph.h"

namespace gs {

struct OnnxImportOptions {
  /// Folder against which external-data locations resolve (default: the model file's folder).
  std::string base_dir;
  /// Refuse any single tensor larger than this many bytes (guards against absurd declared sizes).
  int64_t max_tensor_bytes = int64_t{16} << 30;
};

/// Loads an ONNX model file. Throws gs::Error "<path>: ..." for unreadable / truncated / corrupt
/// files, unsupported opsets, external data that escapes the model folder or mismatches in size.
/// Constant nodes become frozen parameters; initializers become trainable parameters (float) or
/// frozen (integer). Old-opset forms are rewritten to the opset-17 form (e.g. Squeeze axes
/// attribute -> input, Upsample -> Resize).
std::unique_ptr<Graph> importOnnxFile(const std::string& path, const OnnxImportOptions& opts = {});
/// Same, from serialized bytes (`source` names the origin in errors).
/// With an empty opts.base_dir, models with external data are refused.
std::unique_ptr<Graph> importOnnxBytes(const std::string& bytes, const std::string& source,
                                       const OnnxImportOptions& opts = {});

/// Rewrites default-domain nodes from the form of opset graph.opsets[""] (9-17) to the opset-17
/// form (attribute operands become frozen int64/float parameter inputs, Upsample -> Resize,
/// legacy 2-D-coerced Softmax -> Flatten/Softmax/Reshape, ...), then sets graph.opsets[""] = 17.
/// Other domains keep their versions. Called by the importers; idempotent at opset 17.
void upgradeToOpset17(Graph& g);

struct OnnxExportOptions {
  /// Run onnx::checker::check_model on the result and throw if it fails.
  bool check = true;
  /// Also run ONNX's strict shape inference (type/shape consistency of every node) when checking.
  bool full_check = false;
  std::string producer_name = "gstick";
  /// Tensors of at least this many bytes go to `<model>.data` beside the model (0 = never).
  int64_t external_data_threshold = 0;
};

/// external_data_threshold for writing `g` to a file: 0 (one self-contained .onnx) unless its
/// tensors total kAutoExternalDataBytes or more, then 1 MiB, so the .onnx file stays under
/// protobuf's 2 GB limit and the big tensors go to `<model>.data`.
int64_t autoExternalDataThreshold(const Graph& g);
/// Tensor bytes from which autoExternalDataThreshold moves big tensors out (1.5 GiB: the graph
/// itself and the small tensors must still fit in the 2 GB message).
inline constexpr int64_t kAutoExternalDataBytes = int64_t{3} << 29;

/// Serialises the graph to ONNX (opset from graph.opsets, default domain 17).
std::string exportOnnxBytes(const Graph& g, const OnnxExportOptions& opts = {});
/// Writes the model atomically (temp file + rename; the external data file, if any, first). Both
/// serialise the tensors one at a time straight from the graph (no in-memory copy of the model;
/// the bytes are those of protobuf's serialisation of the whole ModelProto). Tensors viewing a
/// memory-mapped checkpoint have their pages released as they are written (dropMappedPages).
void exportOnnxFile(const Graph& g, const std::string& path, const OnnxExportOptions& opts = {});

}  // namespace gs
