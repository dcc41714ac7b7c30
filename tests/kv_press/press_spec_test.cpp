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
