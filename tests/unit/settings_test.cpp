// config/settings: every setting resolves flag > environment > the store's treesnap.toml >
// default, says where its value came from, and a typo or bad value is an error naming its origin.
#include <cstdlib>

#include <gtest/gtest.h>

#include "config/settings.hpp"
#include "test_util.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;

class SettingsTest : public test::TempDirTest {
 protected:
  void TearDown() override {
    for (const char* v : {"TREESNAP_STRATEGY", "TREESNAP_NO_COPY_FALLBACK", "TREESNAP_HARDLINK_WRITABLE",
                          "TREESNAP_STRICT_METADATA", "TREESNAP_PARALLELISM", "TREESNAP_GC_HIGH_WATERMARK",
                          "TREESNAP_GC_LOW_WATERMARK"})
      ::unsetenv(v);
    test::TempDirTest::TearDown();
  }
  void write_config(const std::string& text) { test::write_file(dir() / "treesnap.toml", text); }
};

TEST_F(SettingsTest, DefaultsWithoutAFile) {
  auto s = load_settings(dir());
  ASSERT_TRUE(ok(s));
  EXPECT_EQ(s->strategy.value, Strategy::automatic);
  EXPECT_EQ(s->strategy.source, SettingSource::default_value);
  EXPECT_FALSE(s->hardlink_writable.value);
  EXPECT_EQ(s->parallelism.value, 0u);
  EXPECT_EQ(s->gc_high_watermark.value, 90);
  EXPECT_EQ(s->gc_low_watermark.value, 70);
}

TEST_F(SettingsTest, TheNewStoreFileParsesAndKeepsTheDefaults) {
  ASSERT_TRUE(ok(write_default_config(dir())));
  auto s = load_settings(dir());
  ASSERT_TRUE(ok(s));
  EXPECT_EQ(s->strategy.source, SettingSource::default_value) << "the file's restore keys are commented out";
  EXPECT_EQ(s->gc_high_watermark.source, SettingSource::store_file);
  EXPECT_EQ(s->gc_high_watermark.value, 90);
}

TEST_F(SettingsTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  write_config("[restore]\nstrategy = \"copy\"\nstrict_metadata = true\nhardlink_writable = true\n"
               "[store]\nparallelism = 3\n");
  ::setenv("TREESNAP_STRATEGY", "reflink", 1);
  ::setenv("TREESNAP_HARDLINK_WRITABLE", "no", 1);
  SettingOverrides flags;
  flags.hardlink_writable = true;
  auto s = load_settings(dir(), flags);
  ASSERT_TRUE(ok(s));
  EXPECT_EQ(s->strategy.value, Strategy::reflink);
  EXPECT_EQ(s->strategy.source, SettingSource::environment);
  EXPECT_EQ(s->strategy.origin, "TREESNAP_STRATEGY");
  EXPECT_TRUE(s->strict_metadata.value);
  EXPECT_EQ(s->strict_metadata.source, SettingSource::store_file);
  EXPECT_NE(s->strict_metadata.origin.find("[restore] strict_metadata"), std::string::npos) << s->strict_metadata.origin;
  EXPECT_TRUE(s->hardlink_writable.value);
  EXPECT_EQ(s->hardlink_writable.source, SettingSource::flag);
  EXPECT_EQ(s->parallelism.value, 3u);
  EXPECT_FALSE(s->no_copy_fallback.value);
  EXPECT_EQ(s->no_copy_fallback.source, SettingSource::default_value);

  const RestoreOptions options = s->restore_options();
  EXPECT_EQ(options.strategy, Strategy::reflink);
  EXPECT_TRUE(options.strict_metadata);
  EXPECT_TRUE(options.hardlink_writable);
}

TEST_F(SettingsTest, TyposAndBadValuesAreErrorsNamingTheirOrigin) {
  write_config("[restore]\nstratgey = \"copy\"\n");
  auto typo = load_settings(dir());
  ASSERT_TRUE(fails_with(typo, ErrorCode::invalid));
  EXPECT_NE(typo.error().context.find("stratgey"), std::string::npos) << typo.error().message();

  write_config("[restore]\nstrategy = \"fastest\"\n");
  EXPECT_TRUE(fails_with(load_settings(dir()), ErrorCode::invalid));
  write_config("[restore]\nstrict_metadata = \"yes\"\n");
  EXPECT_TRUE(fails_with(load_settings(dir()), ErrorCode::invalid)) << "a string is not a boolean in TOML";
  write_config("[gc]\nhigh_watermark = 60\nlow_watermark = 80\n");
  EXPECT_TRUE(fails_with(load_settings(dir()), ErrorCode::invalid));
  write_config("not toml at all = = =\n");
  EXPECT_TRUE(fails_with(load_settings(dir()), ErrorCode::invalid));

  write_config("");
  ::setenv("TREESNAP_PARALLELISM", "many", 1);
  auto env = load_settings(dir());
  ASSERT_TRUE(fails_with(env, ErrorCode::invalid));
  EXPECT_NE(env.error().context.find("TREESNAP_PARALLELISM"), std::string::npos) << env.error().message();
}

TEST_F(SettingsTest, NoCopyFallbackContradictsTheCopyStrategyWhereverEachComesFrom) {
  write_config("[restore]\nno_copy_fallback = true\n");
  ::setenv("TREESNAP_STRATEGY", "copy", 1);
  EXPECT_TRUE(fails_with(load_settings(dir()), ErrorCode::invalid));
}

}  // namespace
}  // namespace treesnap
