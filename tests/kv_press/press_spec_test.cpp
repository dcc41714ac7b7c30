// Press specs: what make_kv_press and plan_kv_presses accept, and the
// one-line errors for everything else.
#include <string>

#include <gtest/gtest.h>

#include "kv/press/kv_press.h"

namespace kvforge {
namespace {

std::string error_of(std::string_view spec) {
  auto made = make_kv_press(spec);
  EXPECT_FALSE(made.ok()) << spec;
  return made.ok() ? "" : made.status().message();
}

TEST(PressSpecTest, EveryRegisteredPressBuildsAndNamesItselfCanonically) {
  for (const std::string& name : kv_press_names()) {
    auto press = make_kv_press(name + ":ratio=0.5");
    ASSERT_TRUE(press.ok()) << name << ": " << press.status().to_string();
    // The canonical name is accepted back and names the same press.
    auto again = make_kv_press((*press)->name());
    ASSERT_TRUE(again.ok()) << (*press)->name() << ": " << again.status().to_string();
    EXPECT_EQ((*again)->name(), (*press)->name());
    EXPECT_EQ((*press)->budget().ratio, 0.5);
  }
}

TEST(PressSpecTest, BadSpecsAreOneLineErrorsNamingTheChoices) {
  const std::string unknown = error_of("h3o:ratio=0.5");
  EXPECT_NE(unknown.find("unknown press 'h3o'"), std::string::npos) << unknown;
  for (const std::string& name : kv_press_names()) {
    EXPECT_NE(unknown.find(name), std::string::npos) << unknown;
  }
  EXPECT_NE(error_of("snapkv:ratio=0").find("(0, 1]"), std::string::npos);
  EXPECT_NE(error_of("snapkv:ratio=1.5").find("(0, 1]"), std::string::npos);
  EXPECT_NE(error_of("snapkv:ratio=abc").find("ratio=abc"), std::string::npos);
  EXPECT_NE(error_of("snapkv").find("give a budget"), std::string::npos);
  EXPECT_NE(error_of("snapkv:ratio=0.5:tokens=64").find("not both"), std::string::npos);
  const std::string small = error_of("h2o:tokens=20:sinks=4:window=32");
  EXPECT_NE(small.find("below sinks + window"), std::string::npos) << small;
  const std::string key = error_of("knorm:ratio=0.5:w=3");
  EXPECT_NE(key.find("unknown key 'w'"), std::string::npos) << key;
  EXPECT_NE(key.find("ratio"), std::string::npos) << key;
  EXPECT_NE(error_of("snapkv:ratio=0.5:kernel=4").find("odd"), std::string::npos);
  EXPECT_NE(error_of("snapkv:ratio=0.5:ratio=0.2").find("twice"), std::string::npos);
  EXPECT_NE(error_of("snapkv:ratio=0.5:pool=median").find("avg or max"), std::string::npos);
  EXPECT_NE(error_of("h2o:ratio=0.5:norm").find("key=value"), std::string::npos);
  for (const std::string_view spec : {"streaming:ratio=0.5:adaptive=2", "h2o:ratio=0.5:floor=2",
                                      "snapkv:ratio=-1", "random:tokens=0"}) {
    EXPECT_FALSE(make_kv_press(spec).ok()) << spec;
  }
}

TEST(PressSpecTest, PressesOnAScorerNameItAndItsKeysCanonically) {
  auto mikv = make_kv_press("mikv:ratio=0.5:scorer=snapkv:w=16:low=int8");
  ASSERT_TRUE(mikv.ok()) << mikv.status().to_string();
  EXPECT_EQ((*mikv)->name(), "mikv:ratio=0.5:low=int8:scorer=snapkv:w=16:kernel=5:pool=avg");
  EXPECT_EQ((*mikv)->needs().prompt_queries, 16);  // the scorer's needs
  auto merge = make_kv_press("merge:tokens=64:scorer=h2o:norm=1:sim=0.8");
  ASSERT_TRUE(merge.ok()) << merge.status().to_string();
  EXPECT_EQ((*merge)->name(), "merge:tokens=64:sim=0.8:chunk=64:scorer=h2o:norm=1");
  EXPECT_TRUE((*merge)->needs().keys);
  EXPECT_TRUE((*merge)->needs().decode_queries);
}

TEST(PressSpecTest, BadSpecsOfTheNewPressesAreOneLineErrors) {
  const std::string scorer = error_of("mikv:ratio=0.5:scorer=merge");
  EXPECT_NE(scorer.find("scorer=merge is not a scoring press"), std::string::npos) << scorer;
  EXPECT_NE(scorer.find("h2o"), std::string::npos) << scorer;
  EXPECT_EQ(scorer.find("mikv,"), std::string::npos) << scorer;  // not offered as a scorer
  EXPECT_NE(error_of("merge:ratio=0.5:scorer=h3o").find("not a scoring press"), std::string::npos);
  const std::string low = error_of("mikv:ratio=0.5:low=int2");
  EXPECT_NE(low.find("int4, int4h or int8"), std::string::npos) << low;
  EXPECT_NE(error_of("mikv:ratio=0.5:low=kivi2").find("low=kivi2"), std::string::npos);
  // An unknown key names the press's keys and its scorer's.
  const std::string key = error_of("mikv:ratio=0.5:scorer=snapkv:beta=3");
  EXPECT_NE(key.find("unknown key 'beta'"), std::string::npos) << key;
  EXPECT_NE(key.find("kernel"), std::string::npos) << key;
  EXPECT_NE(key.find("scorer, low"), std::string::npos) << key;
  EXPECT_NE(error_of("merge:ratio=0.5:x=1").find("scorer, sim, chunk"), std::string::npos);
  EXPECT_NE(error_of("merge:ratio=0.5:sim=2").find("sim=2"), std::string::npos);
  EXPECT_NE(error_of("merge:ratio=0.5:chunk=0").find("chunk=0"), std::string::npos);
  EXPECT_NE(error_of("pyramidkv:ratio=0.5:beta=0.5").find("beta=0.5"), std::string::npos);
  EXPECT_NE(error_of("pyramidkv:ratio=0.5:kernel=2").find("odd"), std::string::npos);
  EXPECT_NE(error_of("expected:ratio=0.5:cov=2").find("cov=2"), std::string::npos);
  EXPECT_NE(error_of("expected:ratio=0.5:w=0").find("w=0"), std::string::npos);
  EXPECT_NE(error_of("tova:ratio=0.5:w=4").find("unknown key 'w'"), std::string::npos);
  EXPECT_NE(error_of("tova:ratio=0.5:adaptive=1").find("adaptive=1"), std::string::npos);
  for (const std::string_view spec :
       {"mikv:ratio=0.5:scorer=", "merge:ratio=0.5:scorer=mikv", "mikv:ratio=0.5:low="}) {
    const std::string message = error_of(spec);
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(PressSpecTest, LayerPlansApplyLeftToRight) {
  auto plan = plan_kv_presses("snapkv:ratio=0.5", "0-1:none,3:h2o:tokens=64:norm=1", 5);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_EQ(plan->size(), 5u);
  EXPECT_EQ((*plan)[0], nullptr);
  EXPECT_EQ((*plan)[1], nullptr);
  ASSERT_NE((*plan)[2], nullptr);
  EXPECT_EQ((*plan)[2]->name().rfind("snapkv", 0), 0u);
  EXPECT_EQ((*plan)[3]->name(), "h2o:tokens=64:norm=1");
  EXPECT_EQ((*plan)[4], (*plan)[2]);  // one press object shared by its layers

  auto none = plan_kv_presses("", "", 3);
  ASSERT_TRUE(none.ok());
  for (const auto& p : *none) EXPECT_EQ(p, nullptr);

  for (const auto& [press, layers] :
       {std::pair{"", "7:h2o:ratio=0.5"}, std::pair{"", "1"}, std::pair{"", "2-1:h2o:ratio=0.5"},
        std::pair{"nope", ""}, std::pair{"", "0:snapkv"}}) {
    auto bad = plan_kv_presses(press, layers, 3);
    EXPECT_FALSE(bad.ok()) << press << " / " << layers;
    if (!bad.ok()) {
      EXPECT_NE(bad.status().message().find("--press"), std::string::npos)
          << bad.status().message();
    }
  }
}

}  // namespace
}  // namespace kvforge
