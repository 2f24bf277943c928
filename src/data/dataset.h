// Datasets: the Dataset interface, Fashion-MNIST (IDX files), tensors / .npy files, data specs.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/text_corpus.h"

namespace gs {

/// One sample: `input` without a batch dim; `label` a 0-d tensor (int64 for class labels),
/// undefined if the dataset has no labels.
struct Sample {
  at::Tensor input;
  at::Tensor label;
};

/// A batch: `inputs` [B, ...], `labels` [B] (undefined if unlabeled), and `indices` [B] int64,
/// the dataset rows the batch holds (for debugging, evaluation bookkeeping and tests).
struct Batch {
  at::Tensor inputs;
  at::Tensor labels;
  at::Tensor indices;
  int64_t size() const { return inputs.size(0); }
};

/// Random-access collection of samples. Implementations must allow concurrent const calls
/// (the DataLoader reads from a background thread).
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// Shape of one input (no batch dim), e.g. {1, 28, 28}.
  virtual std::vector<int64_t> inputShape() const = 0;
  /// Whether samples carry labels.
  virtual bool hasLabels() const = 0;
  /// Rows `indices` (1-D int64, each in [0, size())) stacked along a new dim 0.
  /// Throws gs::Error for an out-of-range index.
  virtual Batch getBatch(const at::Tensor& indices) const = 0;
  /// Sample i (a view on getBatch of one index). Throws gs::Error if i is out of range.
  virtual Sample get(int64_t i) const;
  /// Short human-readable name, e.g. "fashion-mnist:train (60000 samples)".
  virtual std::string describe() const = 0;
};

/// In-memory dataset over tensors: inputs [N, ...] and optional labels [N].
/// Integer labels are stored as int64; inputs keep their dtype.
class TensorDataset : public Dataset {
 public:
  /// Throws gs::Error if labels are defined and not 1-D with N entries, or inputs have no dim 0.
  explicit TensorDataset(at::Tensor inputs, at::Tensor labels = {}, std::string name = "tensors");
  /// Loads DIR/inputs.npy and, if present, DIR/labels.npy (via gs::readNpy).
  static std::shared_ptr<TensorDataset> fromNpy(const std::string& dir);

  int64_t size() const override { return inputs_.size(0); }
  std::vector<int64_t> inputShape() const override;
  bool hasLabels() const override { return labels_.defined(); }
  Batch getBatch(const at::Tensor& indices) const override;
  std::string describe() const override;

  const at::Tensor& inputs() const { return inputs_; }
  const at::Tensor& labels() const { return labels_; }

 private:
  at::Tensor inputs_, labels_;
  std::string name_;
};

/// Fashion-MNIST from IDX files: inputs float32 [1, 28, 28] with raw pixel/255 in [0, 1]
/// (normalisation belongs to model graphs), labels int64 in [0, 10).
/// Pixels are kept as uint8 (47 MB for the training split) and converted per batch.
class FashionMnistDataset : public Dataset {
 public:
  enum class Split { Train, Test };
  /// Default directory: $GS_FASHION_MNIST_DIR if set, else /usr/share/datasets/fashion-mnist
  /// (Debian package dataset-fashion-mnist).
  static std::string defaultDir();

  /// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte from `dir`, preferring the .gz file and
  /// accepting the uncompressed one. `limit` > 0 keeps only the first `limit` samples (an error
  /// if the split has fewer). Checks images are N x 28 x 28 uint8, labels N uint8 in [0, 10),
  /// and that both files agree on N.
  explicit FashionMnistDataset(Split split, int64_t limit = 0, const std::string& dir = "");

  int64_t size() const override { return images_.size(0); }
  std::vector<int64_t> inputShape() const override { return {1, 28, 28}; }
  bool hasLabels() const override { return true; }
  Batch getBatch(const at::Tensor& indices) const override;
  std::string describe() const override;

  /// Raw pixels, uint8 [N, 1, 28, 28].
  const at::Tensor& images() const { return images_; }
  /// Labels, int64 [N].
  const at::Tensor& labels() const { return labels_; }

 private:
  Split split_;
  at::Tensor images_, labels_;
};

/// A parsed data spec (the CLI's --data argument).
///   fashion-mnist[:train|:test][:N]   Fashion-MNIST split (default train), first N samples
///   npy:DIR[:N]                       DIR/inputs.npy [+ DIR/labels.npy]; a trailing ":N" is a
///                                     limit unless "DIR:N" itself is an existing directory
///   text[:FILE][:SPLIT][:N]           byte tokens of the built-in corpus (or FILE), SPLIT one of
///                                     train / val / validation / test, first N tokens; a FILE
///                                     that exists is taken whole even if it contains ':'
struct DataSpec {
  enum class Kind { FashionMnist, Npy, Text };
  Kind kind = Kind::FashionMnist;
  FashionMnistDataset::Split split = FashionMnistDataset::Split::Train;
  std::string dir;    ///< npy directory; text FILE (empty = the built-in corpus)
  int64_t limit = 0;  ///< 0 = all samples (text: all tokens of the split)
  std::optional<TextSplit> textSplit;  ///< text split; unset = the caller's default
  /// Text only: tokens per training sample (openDataset cuts the split into non-overlapping
  /// next-token samples of this length; see TokenSequenceDataset). 0 = 128.
  int64_t seqLen = 0;
};

/// Parses a data spec; throws gs::Error quoting the spec and listing the accepted forms.
DataSpec parseDataSpec(const std::string& spec);
/// Opens the dataset a spec describes.
std::shared_ptr<Dataset> openDataset(const DataSpec& spec);
/// parseDataSpec + openDataset.
std::shared_ptr<Dataset> openDataset(const std::string& spec);

}  // namespace gs
