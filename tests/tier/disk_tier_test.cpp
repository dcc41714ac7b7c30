// DiskTier: records kept as files across restarts, LRU within SIZE, damaged
// files answered as misses, one process per directory, and writes paused
// (reads not) while the disk refuses them.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <semaphore>
#include <thread>

#include "tier/disk_tier.h"
#include "tier/tier_factory.h"

// A namespace of its own: the tier tests build as one unity source.
namespace kvforge::disk_tier_test {
namespace {

namespace fs = std::filesystem;

TierKey key_of(uint64_t n, TierRecordKind kind = TierRecordKind::kBlock) {
  return TierKey{BlockHash{n, ~n}, kind};
}

TierRecord record_of(size_t bytes, uint8_t fill) {
  auto record = std::make_shared<std::vector<uint8_t>>(bytes, fill);
  for (size_t i = 0; i < bytes; i += 7) (*record)[i] = static_cast<uint8_t>(i);  // not uniform
  return record;
}

TierResult put_now(KvTier& tier, const TierKey& key, TierRecord record) {
  std::promise<TierResult> done;
  tier.put(key, std::move(record), [&](TierResult r) { done.set_value(std::move(r)); });
  return done.get_future().get();
}

TierResult get_now(KvTier& tier, const TierKey& key) {
  std::promise<TierResult> done;
  tier.get(key, [&](TierResult r) { done.set_value(std::move(r)); });
  return done.get_future().get();
}

TierOutcome contains_now(KvTier& tier, const TierKey& key) {
  std::promise<TierResult> done;
  tier.contains(key, [&](TierResult r) { done.set_value(std::move(r)); });
  return done.get_future().get().outcome;
}

// A directory of this process and test, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& suffix = "") {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (fs::temp_directory_path() /
             fmt::format("kvforge-disk-tier-{}-{}{}", ::getpid(), test->name(), suffix))
                .string();
    fs::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<DiskTier> open_tier(const std::string& dir, size_t capacity_bytes,
                                    const DiskTierOptions& options = {}) {
  auto tier = DiskTier::open("disk:test", dir, capacity_bytes, options);
  EXPECT_TRUE(tier.ok()) << tier.status().to_string();
  return tier.ok() ? std::move(*tier) : nullptr;
}

int count_files_starting_with(const std::string& dir, const std::string& prefix) {
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    n += entry.path().filename().string().starts_with(prefix);
  return n;
}

TEST(DiskTier, StoresReplacesAndEvicts) {
  TempDir dir;
  auto tier = open_tier(dir.path(), 1 << 20);
  ASSERT_NE(tier, nullptr);
  EXPECT_EQ(put_now(*tier, key_of(1), record_of(100, 1)).outcome, TierOutcome::kOk);
  const TierRecord replacement = record_of(200, 2);
  EXPECT_EQ(put_now(*tier, key_of(1), replacement).outcome, TierOutcome::kOk);
  TierResult got = get_now(*tier, key_of(1));
  ASSERT_EQ(got.outcome, TierOutcome::kOk);
  EXPECT_EQ(*got.record, *replacement);
  EXPECT_EQ(fs::file_size(tier->record_path(key_of(1))), DiskTier::file_bytes(200));
  EXPECT_EQ(get_now(*tier, key_of(1, TierRecordKind::kStagedWindow)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(get_now(*tier, key_of(2)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(contains_now(*tier, key_of(1)), TierOutcome::kOk);
  EXPECT_EQ(contains_now(*tier, key_of(2)), TierOutcome::kMiss);
  TierStats s = tier->stats();
  EXPECT_EQ(s.stored_records, 1);
  EXPECT_EQ(s.stored_bytes, static_cast<int64_t>(DiskTier::file_bytes(200)));
  EXPECT_EQ(s.capacity_bytes, 1 << 20);
  EXPECT_TRUE(s.available);

  std::promise<TierResult> evicted;
  tier->evict(key_of(1), [&](TierResult r) { evicted.set_value(std::move(r)); });
  EXPECT_EQ(evicted.get_future().get().outcome, TierOutcome::kOk);
  EXPECT_FALSE(fs::exists(tier->record_path(key_of(1))));
  EXPECT_EQ(get_now(*tier, key_of(1)).outcome, TierOutcome::kMiss);
  std::promise<TierResult> evicted_again;
  tier->evict(key_of(1), [&](TierResult r) { evicted_again.set_value(std::move(r)); });
  EXPECT_EQ(evicted_again.get_future().get().outcome, TierOutcome::kMiss);

  s = tier->stats();
  EXPECT_EQ(s.puts, 2);
  EXPECT_EQ(s.put_bytes, 300);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 3);
  EXPECT_EQ(s.stored_records, 0);
  EXPECT_EQ(s.stored_bytes, 0);
  EXPECT_EQ(s.corrupt, 0);
  EXPECT_EQ(count_files_starting_with(dir.path(), "tmp."), 0);
}

TEST(DiskTier, DropsLeastRecentlyUsedBeyondCapacity) {
  TempDir dir;
  const size_t one = DiskTier::file_bytes(300);
  auto tier = open_tier(dir.path(), 3 * one + 10);
  ASSERT_NE(tier, nullptr);
  for (uint64_t k = 0; k < 3; ++k)
    ASSERT_EQ(put_now(*tier, key_of(k), record_of(300, 1)).outcome, TierOutcome::kOk);
  ASSERT_EQ(get_now(*tier, key_of(0)).outcome, TierOutcome::kOk);  // 0 is now the newest
  ASSERT_EQ(put_now(*tier, key_of(3), record_of(300, 3)).outcome, TierOutcome::kOk);  // drops 1
  EXPECT_EQ(get_now(*tier, key_of(1)).outcome, TierOutcome::kMiss);
  EXPECT_FALSE(fs::exists(tier->record_path(key_of(1))));
  for (uint64_t k : {0, 2, 3}) EXPECT_EQ(get_now(*tier, key_of(k)).outcome, TierOutcome::kOk) << k;
  // A larger record replacing the oldest one (0) drops the next oldest (2)
  // to make room, not the record being replaced.
  ASSERT_EQ(put_now(*tier, key_of(0), record_of(320, 4)).outcome, TierOutcome::kOk);
  TierResult replaced = get_now(*tier, key_of(0));
  ASSERT_EQ(replaced.outcome, TierOutcome::kOk);
  EXPECT_EQ(*replaced.record, *record_of(320, 4));
  EXPECT_EQ(get_now(*tier, key_of(2)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(get_now(*tier, key_of(3)).outcome, TierOutcome::kOk);
  const TierStats s = tier->stats();
  EXPECT_EQ(s.evictions, 2);
  EXPECT_EQ(s.stored_records, 2);
  EXPECT_EQ(s.stored_bytes, static_cast<int64_t>(one + DiskTier::file_bytes(320)));
}

TEST(DiskTier, RejectsARecordLargerThanItsCapacity) {
  TempDir dir;
  auto tier = open_tier(dir.path(), 1000);
  ASSERT_NE(tier, nullptr);
  const size_t fits = 1000 - DiskTier::file_bytes(0);  // the header counts
  ASSERT_EQ(put_now(*tier, key_of(1), record_of(fits, 1)).outcome, TierOutcome::kOk);
  const TierResult too_large = put_now(*tier, key_of(2), record_of(fits + 1, 2));
  EXPECT_EQ(too_large.outcome, TierOutcome::kRejected);
  EXPECT_NE(too_large.error.find("exceeds the capacity"), std::string::npos) << too_large.error;
  // Nothing was dropped for it.
  EXPECT_EQ(get_now(*tier, key_of(1)).outcome, TierOutcome::kOk);
  EXPECT_EQ(tier->stats().put_rejected, 1);
  EXPECT_EQ(tier->stats().evictions, 0);
}

// Recency survives a restart through the files' mtimes (set to the
// nanosecond, so this needs a file system that keeps them: ext4, XFS, tmpfs).
TEST(DiskTier, KeepsRecordsAndRecencyAcrossRestarts) {
  TempDir dir;
  const size_t one = DiskTier::file_bytes(300);
  {
    auto tier = open_tier(dir.path(), 3 * one);
    ASSERT_NE(tier, nullptr);
    for (uint64_t k = 0; k < 3; ++k) {
      ASSERT_EQ(put_now(*tier, key_of(k), record_of(300, static_cast<uint8_t>(k))).outcome,
                TierOutcome::kOk);
    }
    ASSERT_EQ(get_now(*tier, key_of(0)).outcome, TierOutcome::kOk);  // newest first: 0, 2, 1
  }
  {
    auto tier = open_tier(dir.path(), 3 * one);
    ASSERT_NE(tier, nullptr);
    EXPECT_EQ(tier->stats().stored_records, 3);
    EXPECT_EQ(tier->stats().stored_bytes, static_cast<int64_t>(3 * one));
    ASSERT_EQ(put_now(*tier, key_of(3), record_of(300, 3)).outcome, TierOutcome::kOk);
    // contains leaves recency alone.
    EXPECT_EQ(contains_now(*tier, key_of(1)), TierOutcome::kMiss);  // the oldest went
    for (uint64_t k : {0, 2, 3}) EXPECT_EQ(contains_now(*tier, key_of(k)), TierOutcome::kOk) << k;
  }
  // Reopened smaller, the least recent record goes at once (order 3, 0, 2).
  auto tier = open_tier(dir.path(), 2 * one);
  ASSERT_NE(tier, nullptr);
  EXPECT_EQ(tier->stats().stored_records, 2);
  EXPECT_EQ(tier->stats().evictions, 1);
  EXPECT_EQ(contains_now(*tier, key_of(2)), TierOutcome::kMiss);
  EXPECT_FALSE(fs::exists(tier->record_path(key_of(2))));
  for (uint64_t k : {0, 3}) {
    TierResult got = get_now(*tier, key_of(k));
    ASSERT_EQ(got.outcome, TierOutcome::kOk) << k;
    EXPECT_EQ(*got.record, *record_of(300, static_cast<uint8_t>(k))) << k;
  }
}

void flip_byte(const std::string& path, std::streamoff offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekg(offset);
  const char byte = static_cast<char>(file.get());
  file.seekp(offset);
  file.put(static_cast<char>(byte ^ 0x40));
  ASSERT_TRUE(file.good()) << path;
}

// A damaged file is a miss, is removed and is counted; the others are fine.
TEST(DiskTier, DamagedFilesAreMissesRemovedAndCounted) {
  TempDir dir;
  auto tier = open_tier(dir.path(), 1 << 20);
  ASSERT_NE(tier, nullptr);
  for (uint64_t k = 0; k < 5; ++k)
    ASSERT_EQ(put_now(*tier, key_of(k), record_of(4096, 1)).outcome, TierOutcome::kOk);
  const size_t header = DiskTier::file_bytes(0);
  // 0: one payload bit flipped.
  flip_byte(tier->record_path(key_of(0)), static_cast<std::streamoff>(header + 1000));
  // 1: cut short, as by a crash on a file system that reorders writes.
  fs::resize_file(tier->record_path(key_of(1)), header + 2048);
  // 2: moved over 3's name: 3's file now holds 2's record, and 2's is gone.
  fs::rename(tier->record_path(key_of(2)), tier->record_path(key_of(3)));

  for (uint64_t k : {0, 1, 3}) {
    EXPECT_EQ(get_now(*tier, key_of(k)).outcome, TierOutcome::kMiss) << k;
    EXPECT_FALSE(fs::exists(tier->record_path(key_of(k)))) << k;
    EXPECT_EQ(contains_now(*tier, key_of(k)), TierOutcome::kMiss) << k;
  }
  EXPECT_EQ(get_now(*tier, key_of(2)).outcome, TierOutcome::kMiss);  // missing, not damaged
  TierResult intact = get_now(*tier, key_of(4));
  ASSERT_EQ(intact.outcome, TierOutcome::kOk);
  EXPECT_EQ(*intact.record, *record_of(4096, 1));
  const TierStats s = tier->stats();
  EXPECT_EQ(s.corrupt, 3);
  EXPECT_EQ(s.misses, 4);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.stored_records, 1);
  EXPECT_EQ(s.stored_bytes, static_cast<int64_t>(DiskTier::file_bytes(4096)));
}

// A file given another key's name while no tier ran is indexed under that
// name at start-up and found out by its header at the first read.
TEST(DiskTier, FileUnderAnotherKeysNameFoundOutAfterRestart) {
  TempDir dir;
  std::string stranger_path;
  {
    auto tier = open_tier(dir.path(), 1 << 20);
    ASSERT_NE(tier, nullptr);
    ASSERT_EQ(put_now(*tier, key_of(7), record_of(1000, 7)).outcome, TierOutcome::kOk);
    stranger_path = tier->record_path(key_of(8));
    fs::create_directories(fs::path(stranger_path).parent_path());
    fs::rename(tier->record_path(key_of(7)), stranger_path);
  }
  auto tier = open_tier(dir.path(), 1 << 20);
  ASSERT_NE(tier, nullptr);
  EXPECT_EQ(tier->stats().stored_records, 1);
  EXPECT_EQ(contains_now(*tier, key_of(8)), TierOutcome::kOk);  // the index trusts names
  EXPECT_EQ(get_now(*tier, key_of(8)).outcome, TierOutcome::kMiss);
  EXPECT_FALSE(fs::exists(stranger_path));
  EXPECT_EQ(tier->stats().corrupt, 1);
  EXPECT_EQ(tier->stats().stored_records, 0);
}

TEST(DiskTier, RemovesLeftoverTemporaryFilesAtStart) {
  TempDir dir;
  std::string record_path;
  {
    auto tier = open_tier(dir.path(), 1 << 20);
    ASSERT_NE(tier, nullptr);
    ASSERT_EQ(put_now(*tier, key_of(1), record_of(1000, 1)).outcome, TierOutcome::kOk);
    record_path = tier->record_path(key_of(1));
  }
  // What a crash in the middle of two writes leaves, and a file of someone
  // else's that the tier must leave alone.
  const fs::path fan_out = fs::path(record_path).parent_path();
  const std::string leftover = (fan_out / ("tmp." + key_of(2).to_string() + ".0")).string();
  std::ofstream(leftover) << "half a record";
  fs::create_directories(fs::path(dir.path()) / "00");
  std::ofstream((fs::path(dir.path()) / "00" / "tmp.x.17").string()) << "another";
  const std::string foreign = (fan_out / "notes.txt").string();
  std::ofstream(foreign) << "not a record";
  ASSERT_EQ(count_files_starting_with(dir.path(), "tmp."), 2);

  auto tier = open_tier(dir.path(), 1 << 20);
  ASSERT_NE(tier, nullptr);
  EXPECT_EQ(count_files_starting_with(dir.path(), "tmp."), 0);
  EXPECT_TRUE(fs::exists(foreign));
  EXPECT_EQ(tier->stats().stored_records, 1);
  EXPECT_EQ(get_now(*tier, key_of(1)).outcome, TierOutcome::kOk);
}

// Several tier threads at once: every hit is the record put under its key,
// and the index, the files and SIZE agree afterwards.
TEST(DiskTier, ConcurrentOperationsKeepIndexAndFilesInStep) {
  TempDir dir;
  DiskTierOptions options;
  options.queue.n_threads = 4;
  options.queue.max_queued = 1 << 16;
  const size_t capacity = 10 * DiskTier::file_bytes(2000);
  auto tier = open_tier(dir.path(), capacity, options);
  ASSERT_NE(tier, nullptr);
  auto record_for = [](uint64_t k) { return record_of(1000 + 50 * k, static_cast<uint8_t>(k)); };
  std::atomic<int> wrong{0}, failed{0};
  // At most 8 operations in flight, so that reads and writes of the same
  // keys overlap instead of every read running before every write.
  std::counting_semaphore<8> in_flight(8);
  std::mt19937 random(42);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t k = random() % 20;
    in_flight.acquire();
    switch (random() % 4) {
      case 0:
      case 1:
        tier->put(key_of(k), record_for(k), [&](TierResult r) {
          failed += r.outcome != TierOutcome::kOk;
          in_flight.release();
        });
        break;
      case 2:
        tier->get(key_of(k), [&, k](TierResult r) {
          if (r.outcome == TierOutcome::kOk) wrong += *r.record != *record_for(k);
          failed += r.outcome != TierOutcome::kOk && r.outcome != TierOutcome::kMiss;
          in_flight.release();
        });
        break;
      case 3:
        tier->evict(key_of(k), [&](TierResult r) {
          failed += r.outcome != TierOutcome::kOk && r.outcome != TierOutcome::kMiss;
          in_flight.release();
        });
        break;
    }
  }
  tier->flush();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  const TierStats s = tier->stats();
  EXPECT_GT(s.hits, 0);
  EXPECT_EQ(s.corrupt, 0);
  EXPECT_LE(s.stored_bytes, static_cast<int64_t>(capacity));
  int64_t files = 0, file_bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file() || entry.path().filename() == "LOCK") continue;
    ++files;
    file_bytes += static_cast<int64_t>(entry.file_size());
  }
  EXPECT_EQ(files, s.stored_records);
  EXPECT_EQ(file_bytes, s.stored_bytes);
}

TEST(DiskTier, SecondOpenOfALockedDirectoryFails) {
  TempDir dir;
  auto first = open_tier(dir.path(), 1 << 20);
  ASSERT_NE(first, nullptr);
  auto second = DiskTier::open("disk:second", dir.path(), 1 << 20);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(dir.path()), std::string::npos)
      << second.status().to_string();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().to_string();
  first.reset();  // releases the lock
  auto third = DiskTier::open("disk:third", dir.path(), 1 << 20);
  EXPECT_TRUE(third.ok()) << third.status().to_string();
}

TEST(DiskTier, OpenRefusesWhatIsNotADirectory) {
  TempDir dir;
  fs::create_directories(dir.path());
  const std::string file = dir.path() + "/plain-file";
  std::ofstream(file) << "x";
  auto on_file = DiskTier::open("disk:file", file, 1 << 20);
  ASSERT_FALSE(on_file.ok());
  EXPECT_EQ(on_file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(on_file.status().message().find(file), std::string::npos);
  // Below a file, the directory cannot be created (ENOTDIR, even for root).
  auto below_file = DiskTier::open("disk:below", file + "/sub", 1 << 20);
  ASSERT_FALSE(below_file.ok());
  EXPECT_EQ(below_file.status().code(), StatusCode::kIoError);
  EXPECT_NE(below_file.status().message().find(file + "/sub"), std::string::npos);
}

// Caps the size of every file this process writes, which is how a full disk
// looks to a writer (EFBIG instead of ENOSPC: the same pause). SIGXFSZ is
// ignored meanwhile, else the kernel kills the process. chmod cannot make
// the directory read-only here: the tests run as root. The cap applies to
// every regular file the process writes while it holds; the test's only
// other one, the stderr capture, stays far below it (gtest's own output goes
// to a pipe or terminal, unless redirected to a file already past the cap).
class FileSizeCap {
 public:
  explicit FileSizeCap(rlim_t bytes) {
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_limit_);
    rlimit capped = old_limit_;
    capped.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &capped), 0);
  }
  ~FileSizeCap() {
    ::setrlimit(RLIMIT_FSIZE, &old_limit_);
    ::signal(SIGXFSZ, old_handler_);
  }
  FileSizeCap(const FileSizeCap&) = delete;
  FileSizeCap& operator=(const FileSizeCap&) = delete;

 private:
  rlimit old_limit_{};
  sighandler_t old_handler_;
};

int count_lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  size_t at = 0;
  while ((at = text.find(what, at)) != std::string::npos) {
    ++n;
    at += what.size();
  }
  return n;
}

TEST(DiskTier, FullDiskPausesWritesKeepsReadsAndRecovers) {
  TempDir dir;
  DiskTierOptions options;
  // Long enough that the put right after the failure is paused, short for a test.
  options.write_retry_after = std::chrono::seconds(1);
  auto tier = open_tier(dir.path(), 16 << 20, options);
  ASSERT_NE(tier, nullptr);
  ASSERT_EQ(put_now(*tier, key_of(1), record_of(1000, 1)).outcome, TierOutcome::kOk);

  testing::internal::CaptureStderr();
  {
    FileSizeCap cap(64 << 10);
    const TierResult failed = put_now(*tier, key_of(2), record_of(128 << 10, 2));
    EXPECT_EQ(failed.outcome, TierOutcome::kError);
    EXPECT_NE(failed.error.find(strerror(EFBIG)), std::string::npos) << failed.error;
    EXPECT_FALSE(tier->stats().available);
    // Paused: not even attempted, though this one would fit under the cap.
    const TierResult paused = put_now(*tier, key_of(3), record_of(1000, 3));
    EXPECT_EQ(paused.outcome, TierOutcome::kRejected);
    EXPECT_NE(paused.error.find("paused"), std::string::npos) << paused.error;
    // Reads go on.
    TierResult got = get_now(*tier, key_of(1));
    ASSERT_EQ(got.outcome, TierOutcome::kOk);
    EXPECT_EQ(*got.record, *record_of(1000, 1));
    // After the back-off the tier tries again; failing again prints nothing.
    std::this_thread::sleep_for(options.write_retry_after + std::chrono::milliseconds(100));
    EXPECT_EQ(put_now(*tier, key_of(2), record_of(128 << 10, 2)).outcome, TierOutcome::kError);
    EXPECT_FALSE(tier->stats().available);
  }
  // The failed writes left no partial file behind.
  EXPECT_EQ(count_files_starting_with(dir.path(), "tmp."), 0);
  EXPECT_EQ(contains_now(*tier, key_of(2)), TierOutcome::kMiss);
  EXPECT_EQ(put_now(*tier, key_of(3), record_of(1000, 3)).outcome, TierOutcome::kRejected);

  std::this_thread::sleep_for(options.write_retry_after + std::chrono::milliseconds(100));
  EXPECT_EQ(put_now(*tier, key_of(2), record_of(128 << 10, 2)).outcome, TierOutcome::kOk);
  const std::string warnings = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(tier->stats().available);
  EXPECT_EQ(get_now(*tier, key_of(2)).outcome, TierOutcome::kOk);
  EXPECT_EQ(count_lines_with(warnings, "writes paused"), 1) << warnings;
  EXPECT_EQ(count_lines_with(warnings, "writes work again"), 1) << warnings;
  EXPECT_NE(warnings.find(dir.path()), std::string::npos) << warnings;
  const TierStats s = tier->stats();
  EXPECT_EQ(s.put_errors, 2);
  EXPECT_EQ(s.put_rejected, 2);
  EXPECT_EQ(s.puts, 2);
}

TEST(TierFactory, ParsesDiskWithColonsInTheDirectory) {
  TempDir dir(":with:colons");
  const std::string spec = "disk:" + dir.path() + ":1MiB";
  auto tier = make_kv_tier(spec);
  ASSERT_TRUE(tier.ok()) << tier.status().to_string();
  EXPECT_EQ((*tier)->name(), spec);
  EXPECT_EQ((*tier)->stats().capacity_bytes, 1 << 20);
  EXPECT_TRUE(fs::is_directory(dir.path()));
  // The directory is taken: the second tier's error is the backend's own.
  auto again = make_kv_tier(spec);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kIoError);
  EXPECT_NE(again.status().message().find(dir.path()), std::string::npos);

  for (const std::string& bad : {std::string("disk:"), std::string("disk:1GiB"),
                                 std::string("disk::1GiB"), "disk:" + dir.path() + ":lots"}) {
    auto refused = make_kv_tier(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(refused.status().message().find("disk:DIR:SIZE"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace kvforge::disk_tier_test
