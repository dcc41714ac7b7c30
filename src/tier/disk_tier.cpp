#include "tier/disk_tier.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

namespace kvforge {
namespace {

namespace fs = std::filesystem;

// Written in host byte order: a file from a host of the other order fails
// the version check and counts as corrupt.
struct FileHeader {
  char magic[4];
  uint32_t version;
  uint64_t hash_high;
  uint64_t hash_low;
  uint8_t kind;
  uint8_t reserved[7];
  uint64_t payload_bytes;
  uint64_t payload_xxh3;
};
static_assert(sizeof(FileHeader) == 48);
constexpr char kMagic[4] = {'K', 'V', 'F', 'D'};
constexpr uint32_t kVersion = 1;
constexpr std::string_view kTempPrefix = "tmp.";

// Fan-out: 256 subdirectories by the hash's first byte. A flat directory of
// a large tier's hundreds of thousands of files works on ext4 and XFS, but
// its directory blocks never shrink after churn (slow scans at start-up)
// and every create, rename and unlink in it serializes on one inode lock.
std::string_view fan_out_of(std::string_view file_name) {
  return file_name.substr(1, 2);
}

bool is_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The inverse of TierKey::to_string(), for names found by the start-up scan.
std::optional<TierKey> key_of_file_name(std::string_view name) {
  if (name.size() != 33 || (name[0] != 'b' && name[0] != 'w') || !is_lower_hex(name.substr(1)))
    return std::nullopt;
  TierKey key;
  key.kind = name[0] == 'b' ? TierRecordKind::kBlock : TierRecordKind::kStagedWindow;
  std::from_chars(name.data() + 1, name.data() + 17, key.hash.high, 16);
  std::from_chars(name.data() + 17, name.data() + 33, key.hash.low, 16);
  return key;
}

// 0, or the errno of the failure.
int write_all(int fd, const void* data, size_t bytes) {
  const auto* at = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, at, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    at += n;
    bytes -= static_cast<size_t>(n);
  }
  return 0;
}

// The bytes read (fewer than asked only at end of file), or -1 with errno.
ssize_t read_all(int fd, void* data, size_t bytes) {
  auto* at = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::read(fd, at + done, bytes - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

// The recency a restart reads back. Set explicitly, to the nanosecond: the
// kernel's own file times tick coarsely, and records written within one
// tick would lose their order.
void set_mtime_now(int fd) {
  timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  clock_gettime(CLOCK_REALTIME, &times[1]);
  (void)futimens(fd, times);  // recency is a hint: a failure costs nothing
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

std::string errno_text(int err) {
  return std::system_category().message(err);
}

}  // namespace

Result<std::unique_ptr<DiskTier>> DiskTier::open(std::string name, std::string dir,
                                                 size_t capacity_bytes,
                                                 const DiskTierOptions& options) {
  std::error_code ec;
  fs::create_directories(dir, ec);  // its error is reported below, more precisely
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return io_error(fmt::format("cannot create the disk tier directory '{}': {}", dir,
                                ec ? ec.message() : errno_text(errno)));
  }
  if (!S_ISDIR(st.st_mode))
    return invalid_argument(fmt::format("disk tier directory '{}' is not a directory", dir));
  const std::string lock_path = dir + "/LOCK";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  // A read-only directory still serves its records (flock needs no write
  // access); its writes are paused at the first put.
  if (lock_fd < 0 && (errno == EROFS || errno == EACCES))
    lock_fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (lock_fd < 0)
    return io_error(fmt::format("cannot open '{}': {}", lock_path, errno_text(errno)));
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK) {
      return io_error(fmt::format(
          "disk tier directory '{}' is in use by another process or tier (its LOCK is held)", dir));
    }
    return io_error(fmt::format("cannot lock '{}': {}", lock_path, errno_text(err)));
  }
  std::unique_ptr<DiskTier> tier(
      new DiskTier(std::move(name), std::move(dir), capacity_bytes, options, lock_fd));
  Status loaded = tier->load_index();
  if (!loaded.ok()) return loaded;
  return tier;
}

DiskTier::DiskTier(std::string name, std::string dir, size_t capacity_bytes,
                   const DiskTierOptions& options, int lock_fd)
    : QueuedTier(std::move(name), options.queue),
      dir_(std::move(dir)),
      capacity_bytes_(capacity_bytes),
      options_(options),
      lock_fd_(lock_fd) {}

DiskTier::~DiskTier() {
  stop();
  ::close(lock_fd_);  // releases the lock
}

size_t DiskTier::file_bytes(size_t payload_bytes) {
  return sizeof(FileHeader) + payload_bytes;
}

std::string DiskTier::record_path(const TierKey& key) const {
  const std::string file_name = key.to_string();
  return fmt::format("{}/{}/{}", dir_, fan_out_of(file_name), file_name);
}

// Runs before the tier is shared, but takes the lock for the helpers' sake.
Status DiskTier::load_index() {
  struct Found {
    TierKey key;
    size_t bytes;
    timespec mtime;
  };
  std::vector<Found> found;
  std::lock_guard lock(mutex_);
  std::error_code ec;
  for (auto top = fs::directory_iterator(dir_, ec); !ec && top != fs::directory_iterator();
       top.increment(ec)) {
    const std::string fan_out = top->path().filename().string();
    // A subdirectory that cannot be read costs its records, not the tier.
    std::error_code sub_ec;
    if (fan_out.size() != 2 || !is_lower_hex(fan_out) || !top->is_directory(sub_ec)) continue;
    for (auto sub = fs::directory_iterator(top->path(), sub_ec);
         !sub_ec && sub != fs::directory_iterator(); sub.increment(sub_ec)) {
      const std::string file_name = sub->path().filename().string();
      const std::string path = sub->path().string();
      if (file_name.starts_with(kTempPrefix)) {
        // A write that a crash interrupted: no other process writes here.
        ::unlink(path.c_str());
        continue;
      }
      const std::optional<TierKey> key = key_of_file_name(file_name);
      struct stat st;
      // Files of other names are not ours: left alone, not counted.
      if (!key || fan_out_of(file_name) != fan_out || ::lstat(path.c_str(), &st) != 0 ||
          !S_ISREG(st.st_mode)) {
        continue;
      }
      if (static_cast<size_t>(st.st_size) < sizeof(FileHeader)) {
        ::unlink(path.c_str());
        ++corrupt_;
        continue;
      }
      found.push_back(Found{*key, static_cast<size_t>(st.st_size), st.st_mtim});
    }
  }
  if (ec) {
    return io_error(
        fmt::format("cannot read the disk tier directory '{}': {}", dir_, ec.message()));
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.mtime.tv_sec, a.mtime.tv_nsec) > std::tie(b.mtime.tv_sec, b.mtime.tv_nsec);
  });
  for (const Found& f : found) {
    lru_.push_back(Entry{f.key, f.bytes});
    by_key_.emplace(f.key, std::prev(lru_.end()));
    bytes_ += f.bytes;
  }
  // SIZE may be smaller than the last run's.
  while (bytes_ > capacity_bytes_) {
    ::unlink(record_path(lru_.back().key).c_str());
    erase(std::prev(lru_.end()));
    ++evictions_;
  }
  return Status::ok_status();
}

void DiskTier::erase(Lru::iterator it) {
  bytes_ -= it->bytes;
  by_key_.erase(it->key);
  lru_.erase(it);
}

void DiskTier::make_room(const TierKey& key, size_t bytes) {
  // key's own file goes when the new one is renamed over it: it counts as
  // free now, so the directory may briefly hold one record more than SIZE.
  size_t replaced = 0;
  if (auto found = by_key_.find(key); found != by_key_.end()) replaced = found->second->bytes;
  auto older_than = lru_.end();
  while (bytes_ - replaced + reserved_ + bytes > capacity_bytes_ && older_than != lru_.begin()) {
    const auto victim = std::prev(older_than);
    if (victim->key == key) {
      older_than = victim;
      continue;
    }
    // A file that cannot be removed stays until the next start-up's scan
    // finds it; the index forgets it now, so that writing can go on.
    ::unlink(record_path(victim->key).c_str());
    erase(victim);
    ++evictions_;
  }
}

std::optional<std::string> DiskTier::writes_paused() {
  std::lock_guard lock(mutex_);
  if (writable_ || std::chrono::steady_clock::now() >= retry_writes_at_) return std::nullopt;
  return fmt::format("{} (writes paused)", unwritable_reason_);
}

TierResult DiskTier::write_failed(int err, const std::string& what) {
  std::string message = fmt::format("{}: {}: {}", name(), what, errno_text(err));
  const bool full = err == ENOSPC || err == EFBIG || err == EDQUOT;
  const bool read_only = err == EROFS || err == EACCES || err == EPERM;
  if (full || read_only) {
    bool was_writable;
    {
      std::lock_guard lock(mutex_);
      was_writable = writable_;
      writable_ = false;
      unwritable_reason_ = message;
      retry_writes_at_ = std::chrono::steady_clock::now() + options_.write_retry_after;
    }
    if (was_writable) {
      const double seconds = std::chrono::duration<double>(options_.write_retry_after).count();
      fmt::print(stderr, "kvforge: {}; writes paused, retried every {:g} s; reads go on\n", message,
                 seconds);
    }
  }
  // This write was attempted, hence kError; the ones paused after it are
  // kRejected.
  return {TierOutcome::kError, nullptr, std::move(message), 0};
}

void DiskTier::write_succeeded() {
  {
    std::lock_guard lock(mutex_);
    if (writable_) return;
    writable_ = true;
    unwritable_reason_.clear();
  }
  fmt::print(stderr, "kvforge: {}: writes work again\n", name());
}

TierResult DiskTier::do_put(const TierKey& key, const TierRecord& record) {
  if (record == nullptr) return {TierOutcome::kRejected, nullptr, "no record", 0};
  const size_t bytes = file_bytes(record->size());
  if (bytes > capacity_bytes_) {
    return {TierOutcome::kRejected, nullptr,
            fmt::format("{}: a record of {} bytes exceeds the capacity", name(), record->size()),
            0};
  }
  if (std::optional<std::string> why = writes_paused())
    return {TierOutcome::kRejected, nullptr, std::move(*why), 0};

  const std::string final_path = record_path(key);
  const std::string file_name = key.to_string();
  const std::string sub_dir = fmt::format("{}/{}", dir_, fan_out_of(file_name));
  const std::string temp_path =
      fmt::format("{}/{}{}.{}", sub_dir, kTempPrefix, file_name, next_temp_.fetch_add(1));
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = ::open(temp_path.c_str(), flags, 0644);
  if (fd < 0 && errno == ENOENT) {  // the first record in this fan-out
    if (::mkdir(sub_dir.c_str(), 0755) != 0 && errno != EEXIST)
      return write_failed(errno, fmt::format("cannot create '{}'", sub_dir));
    fd = ::open(temp_path.c_str(), flags, 0644);
  }
  if (fd < 0) return write_failed(errno, fmt::format("cannot create '{}'", temp_path));

  {
    std::lock_guard lock(mutex_);
    make_room(key, bytes);
    reserved_ += bytes;
  }
  FileHeader header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kVersion;
  header.hash_high = key.hash.high;
  header.hash_low = key.hash.low;
  header.kind = static_cast<uint8_t>(key.kind);
  header.payload_bytes = record->size();
  header.payload_xxh3 = XXH3_64bits(record->data(), record->size());
  int err = write_all(fd, &header, sizeof(header));
  if (err == 0) err = write_all(fd, record->data(), record->size());
  if (err == 0) set_mtime_now(fd);
  // No fsync (see the header). close can still report a delayed write error.
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;

  std::unique_lock lock(mutex_);
  reserved_ -= bytes;
  const char* step = "cannot write";
  if (err == 0 && ::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    err = errno;
    step = "cannot rename";
  }
  if (err != 0) {
    ::unlink(temp_path.c_str());
    lock.unlock();
    return write_failed(err, fmt::format("{} '{}'", step, temp_path));
  }
  if (auto found = by_key_.find(key); found != by_key_.end()) erase(found->second);
  lru_.push_front(Entry{key, bytes});
  by_key_.emplace(key, lru_.begin());
  bytes_ += bytes;
  lock.unlock();
  write_succeeded();
  return {TierOutcome::kOk, nullptr, {}, 0};
}

void DiskTier::drop_corrupt(const TierKey& key, const std::string& path, dev_t dev, ino_t ino) {
  std::lock_guard lock(mutex_);
  ++corrupt_;
  // Only if it is still the file that was read: a put may have replaced it.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || st.st_dev != dev || st.st_ino != ino) return;
  ::unlink(path.c_str());  // on a read-only disk it stays, but unindexed
  if (auto found = by_key_.find(key); found != by_key_.end()) erase(found->second);
}

TierResult DiskTier::do_get(const TierKey& key) {
  {
    std::lock_guard lock(mutex_);
    if (!by_key_.contains(key)) return {TierOutcome::kMiss, nullptr, {}, 0};
  }
  const std::string path = record_path(key);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {  // removed behind the tier's back
      std::lock_guard lock(mutex_);
      if (auto found = by_key_.find(key); found != by_key_.end()) erase(found->second);
      return {TierOutcome::kMiss, nullptr, {}, 0};
    }
    return {TierOutcome::kError, nullptr,
            fmt::format("{}: cannot open '{}': {}", name(), path, errno_text(err)), 0};
  }
  FdCloser closer(fd);
  auto read_error = [&] {
    return TierResult{TierOutcome::kError, nullptr,
                      fmt::format("{}: cannot read '{}': {}", name(), path, errno_text(errno)), 0};
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) return read_error();
  auto corrupt = [&](const char* why) {
    drop_corrupt(key, path, st.st_dev, st.st_ino);
    return TierResult{TierOutcome::kMiss, nullptr,
                      fmt::format("{}: '{}' {}; removed", name(), path, why), 0};
  };

  FileHeader header;
  const ssize_t header_read = read_all(fd, &header, sizeof(header));
  if (header_read < 0) return read_error();
  if (static_cast<size_t>(header_read) < sizeof(header)) return corrupt("is shorter than a header");
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0 || header.version != kVersion)
    return corrupt("is not a record file of this version");
  if (header.hash_high != key.hash.high || header.hash_low != key.hash.low ||
      header.kind != static_cast<uint8_t>(key.kind)) {
    return corrupt("holds another key's record");
  }
  if (header.payload_bytes != static_cast<uint64_t>(st.st_size) - sizeof(header))
    return corrupt("does not have the length its header gives");
  auto payload = std::make_shared<std::vector<uint8_t>>(header.payload_bytes);
  const ssize_t payload_read = read_all(fd, payload->data(), payload->size());
  if (payload_read < 0) return read_error();
  if (static_cast<size_t>(payload_read) < payload->size()) return corrupt("is truncated");
  if (XXH3_64bits(payload->data(), payload->size()) != header.payload_xxh3)
    return corrupt("fails its checksum");

  set_mtime_now(fd);
  {
    std::lock_guard lock(mutex_);
    if (auto found = by_key_.find(key); found != by_key_.end())
      lru_.splice(lru_.begin(), lru_, found->second);
  }
  return {TierOutcome::kOk, std::move(payload), {}, 0};
}

// From the index alone: a file damaged on disk is found by the get.
TierResult DiskTier::do_contains(const TierKey& key) {
  std::lock_guard lock(mutex_);
  return {by_key_.contains(key) ? TierOutcome::kOk : TierOutcome::kMiss, nullptr, {}, 0};
}

TierResult DiskTier::do_evict(const TierKey& key) {
  std::lock_guard lock(mutex_);
  const auto found = by_key_.find(key);
  if (found == by_key_.end()) return {TierOutcome::kMiss, nullptr, {}, 0};
  const std::string path = record_path(key);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return {TierOutcome::kError, nullptr,
            fmt::format("{}: cannot remove '{}': {}", name(), path, errno_text(errno)), 0};
  }
  erase(found->second);
  return {TierOutcome::kOk, nullptr, {}, 0};
}

void DiskTier::add_backend_stats(TierStats& stats) const {
  std::lock_guard lock(mutex_);
  stats.stored_records = static_cast<int64_t>(lru_.size());
  stats.stored_bytes = static_cast<int64_t>(bytes_);
  stats.capacity_bytes = static_cast<int64_t>(capacity_bytes_);
  stats.evictions = evictions_;
  stats.corrupt = corrupt_;
  stats.available = writable_;
}

}  // namespace kvforge
