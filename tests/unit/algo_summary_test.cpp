// Summary tables: aligned text, JSON and CSV renderings and totals.
#include "algo/summary.h"

#include <gtest/gtest.h>

#include "algo_test_util.h"
#include "support/file_util.h"

namespace gs {
namespace {

SummaryTable table() {
  SummaryTable t;
  t.algo = "demo";
  SummaryRow a;
  a.layer = "conv1";
  a.op = "Conv";
  a.policy = "W8-per_channel-A8-per_tensor";
  a.paramsBefore = 156;
  a.paramsAfter = 156;
  a.bytesBefore = 624;
  a.bytesAfter = 180;
  a.metrics["mse"] = 0.00125;
  SummaryRow b;
  b.layer = "fc, \"last\"";
  b.op = "Gemm";
  b.policy = "skip";
  b.paramsBefore = b.paramsAfter = 850;
  b.bytesBefore = b.bytesAfter = 3400;
  b.note = "ignored scope 'fc'";
  t.rows = {a, b};
  t.notes = {{"calibration", "8 batches"}};
  return t;
}

TEST(AlgoSummary, TotalsSumColumns) {
  SummaryRow t = table().total();
  EXPECT_EQ(t.paramsBefore, 1006);
  EXPECT_EQ(t.paramsAfter, 1006);
  EXPECT_EQ(t.bytesBefore, 4024);
  EXPECT_EQ(t.bytesAfter, 3580);
}

TEST(AlgoSummary, AlignedText) {
  EXPECT_EQ(table().toText(),
            "summary of demo:\n"
            "layer       op    policy                        params before  params after  "
            "bytes before  bytes after      mse  note\n"
            "conv1       Conv  W8-per_channel-A8-per_tensor            156           156  "
            "         624          180  0.00125\n"
            "fc, \"last\"  Gemm  skip                                    850           850  "
            "        3400         3400           ignored scope 'fc'\n"
            "--------------------------------------------------------------------------------"
            "---------------------------------------------------\n"
            "total                                                    1006          1006  "
            "        4024         3580\n"
            "calibration: 8 batches\n");
}

TEST(AlgoSummary, Json) {
  Json j = table().toJson();
  EXPECT_EQ(j["algo"], "demo");
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["policy"], "W8-per_channel-A8-per_tensor");
  EXPECT_EQ(j["rows"][0]["bytes_after"], 180);
  EXPECT_DOUBLE_EQ(j["rows"][0]["metrics"]["mse"].get<double>(), 0.00125);
  EXPECT_EQ(j["rows"][1]["note"], "ignored scope 'fc'");
  EXPECT_EQ(j["total"].dump(),
            R"({"layer":"total","params_before":1006,"params_after":1006,"bytes_before":4024,)"
            R"("bytes_after":3580})");
  EXPECT_EQ(j["notes"]["calibration"], "8 batches");
}

TEST(AlgoSummary, CsvQuotesSpecialFields) {
  EXPECT_EQ(table().toCsv(),
            "layer,op,policy,params_before,params_after,bytes_before,bytes_after,mse,note\n"
            "conv1,Conv,W8-per_channel-A8-per_tensor,156,156,624,180,0.00125,\n"
            "\"fc, \"\"last\"\"\",Gemm,skip,850,850,3400,3400,,ignored scope 'fc'\n");
}

TEST(AlgoSummary, WriteByExtension) {
  std::string dir = test::tempDir("algo_summary");
  table().write(dir + "/s.json");
  table().write(dir + "/s.csv");
  EXPECT_EQ(Json::parse(readFile(dir + "/s.json")), table().toJson());
  EXPECT_EQ(readFile(dir + "/s.csv"), table().toCsv());
  EXPECT_EQ(test::algoErrorOf([&] { table().write(dir + "/s.txt"); }),
            dir + "/s.txt: summary file must end in .json or .csv");
}

}  // namespace
}  // namespace gs
