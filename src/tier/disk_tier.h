// DiskTier ("disk:DIR:SIZE"): records as files in a directory, least
// recently used dropped first beyond SIZE bytes, kept across restarts.
//
//   DIR/LOCK                 flock'ed while a tier uses DIR: one process only
//   DIR/ab/b<32 hex>         one record per file, named TierKey::to_string(),
//                            under the first two hex digits of its hash
//   DIR/ab/tmp.<key>.<n>     a write in progress; removed at start-up
//
// Every file is a 48-byte header (magic, version, key, payload length,
// XXH3-64 of the payload) and the record. A file that is short, damaged or
// holds another key's record is answered as a miss, deleted and counted in
// TierStats::corrupt, so a damaged disk costs recomputation, never an error.
//
// A write goes to a temporary file that is renamed over the record's name
// once complete: a crash leaves the old record or the new one, never part of
// one. Nothing is fsync'ed: this is a cache, and a record lost or torn by a
// power cut is caught by its checksum and recomputed.
//
// The index (key -> bytes, recency) lives in memory and is rebuilt from a
// scan of DIR at open; recency survives a restart through the files' mtimes,
// which puts and gets set. SIZE counts the files' bytes, headers included
// (not the file system's rounding to blocks).
//
// A disk that is full (ENOSPC, EFBIG, EDQUOT) or read-only (EROFS, EACCES,
// EPERM) pauses writes: the put that met it is kError, later ones kRejected
// until write_retry_after has passed and a put is tried again; reads go on,
// stats().available is false until a write succeeds, and stderr gets one
// line when writing stops and one when it works again. Any other I/O error
// fails that one operation (kError). contains answers from the index alone.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "kvforge/status.h"
#include "tier/queued_tier.h"

namespace kvforge {

struct DiskTierOptions {
  QueuedTierOptions queue;
  // How long writes stay paused after the disk was found full or read-only.
  std::chrono::steady_clock::duration write_retry_after = std::chrono::seconds(30);
};

class DiskTier final : public QueuedTier {
 public:
  // Creates dir if missing, locks it and indexes the records already there.
  // Fails (kIoError / kInvalidArgument, naming dir) if dir cannot be created
  // or read, is not a directory, or another DiskTier holds its lock.
  [[nodiscard]] static Result<std::unique_ptr<DiskTier>> open(std::string name, std::string dir,
                                                              size_t capacity_bytes,
                                                              const DiskTierOptions& options = {});
  ~DiskTier() override;

  // The on-disk size of a record of payload_bytes (what SIZE counts).
  [[nodiscard]] static size_t file_bytes(size_t payload_bytes);
  // Where the record of key is stored (tests).
  [[nodiscard]] std::string record_path(const TierKey& key) const;

 protected:
  TierResult do_put(const TierKey& key, const TierRecord& record) override;
  TierResult do_get(const TierKey& key) override;
  TierResult do_contains(const TierKey& key) override;
  TierResult do_evict(const TierKey& key) override;
  void add_backend_stats(TierStats& stats) const override;

 private:
  struct Entry {
    TierKey key;
    size_t bytes;
  };
  using Lru = std::list<Entry>;  // most recently used first

  DiskTier(std::string name, std::string dir, size_t capacity_bytes, const DiskTierOptions& options,
           int lock_fd);
  Status load_index();
  void erase(Lru::iterator it);
  // Drops least recently used records (never key) until bytes more fit.
  void make_room(const TierKey& key, size_t bytes);
  // Why puts are refused now, if they are.
  std::optional<std::string> writes_paused();
  // A write failed with errno err: pauses writes if the disk is full or
  // read-only, and says what happened.
  TierResult write_failed(int err, const std::string& what);
  void write_succeeded();
  void drop_corrupt(const TierKey& key, const std::string& path, dev_t dev, ino_t ino);

  const std::string dir_;
  const size_t capacity_bytes_;
  const DiskTierOptions options_;
  const int lock_fd_;
  std::atomic<uint64_t> next_temp_{0};  // makes temporary names unique
  // Guards the index and every rename and unlink in DIR, so that the index
  // and the directory change together; data is read and written outside it.
  mutable std::mutex mutex_;
  Lru lru_;
  std::unordered_map<TierKey, Lru::iterator, TierKeyHasher> by_key_;
  size_t bytes_ = 0;     // of the indexed files
  size_t reserved_ = 0;  // of writes in progress
  int64_t evictions_ = 0;
  int64_t corrupt_ = 0;
  bool writable_ = true;
  std::string unwritable_reason_;
  std::chrono::steady_clock::time_point retry_writes_at_;
};

}  // namespace kvforge
