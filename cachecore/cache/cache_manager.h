// CacheManager: the node cache itself, owned by the daemon.
//
// It keeps the namespace mirror (real directories, files of the objects'
// exact sizes), is the only writer of the shared index, fetches objects whole
// (up to DSCACHE_WHOLE_FILE_MAX) or by block into the mirror, writes through
// io_uring, evicts by LRU within DSCACHE_CACHE_SIZE and the free-space guard,
// and counts everything in the shared stats.
//
// Every request completes its reply exactly once, on an internal thread, when
// what it asked for is published (or with an errno and a one-line message).
// Concurrent requests for the same listing, object or block are served by one
// fetch (single-flight), whichever process they come from.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <deque>
#include <set>
#include <thread>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/content_guard.h"
#include "cache/fill_writer.h"
#include "cache/mirror.h"
#include "common/env.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "config/config.h"
#include "http/fetch_engine.h"
#include "index/index_writer.h"
#include "store/object_store.h"

namespace dscache {

// The error for a request naming a mount the running daemon was not started with.
Status unknown_mount(uint64_t mount_id);

// Set by a recycle that skipped a block because it was held (this thread's
// last make_room): the room comes back when the hold runs out.
extern thread_local bool t_recycle_held;

struct IndexKeyHash {
  size_t operator()(const IndexKey& k) const { return static_cast<size_t>(k.lo ^ (k.hi * 0x9E3779B97F4A7C15ull)); }
};

class CacheManager {
 public:
  using Reply = std::function<void(Status)>;

  struct Options {
    bool use_io_uring = true;
    int pool_threads = 8;
    // The daemon turns this on: large placeholders are then guarded in the
    // kernel as DSCACHE_KERNEL_GUARD says (cache/content_guard.h), with a keeper.
    bool kernel_guard = false;
    // Tests inject stores (a MemoryStore, a FailureStore); by default each
    // mount opens the store its URL names.
    std::function<Result<std::shared_ptr<ObjectStore>>(const MountConfig&)> open_store;
  };

  static Result<std::unique_ptr<CacheManager>> open(const Config& config, const Env& env, Options options);
  ~CacheManager();

  void ensure_listed(uint64_t mount_id, const std::string& dir, Priority priority, Reply reply);
  void fetch_object(uint64_t mount_id, const std::string& path, Priority priority, Reply reply);
  void fetch_range(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length, bool sequential,
                   Priority priority, Reply reply);
  void complete_file(uint64_t mount_id, const std::string& path, Priority priority, Reply reply);
  // A reader found a file the index calls complete missing or of the wrong
  // size in the mirror (deleted or truncated behind the daemon's back): if it
  // is, it is made absent and fetched again; then as fetch_object.
  void refetch_damaged(uint64_t mount_id, const std::string& path, Priority priority, Reply reply);
  // A range about to be read where the shim cannot check it after the read
  // (POSIX aio, the kernel guard's reads): its blocks are not recycled for
  // `ms` milliseconds (a file larger than the cache's room recycles its own blocks).
  void hold_range(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length, uint32_t ms);

  // A partial file pinned by a client is never evicted; a client that goes
  // away releases its pins.
  void pin(uint64_t client, uint64_t mount_id, const std::string& path);
  void unpin(uint64_t client, uint64_t mount_id, const std::string& path);
  void release_client(uint64_t client);
  // Drops a file's cached bytes (`dscache evict`): it stays listed, as a
  // placeholder fetched again on next use. EBUSY while it is pinned or filling.
  Status evict_file(uint64_t mount_id, const std::string& path);

  // Nothing fetching or listing.
  bool idle() const;
  std::string status_text() const;
  // Writes the bytes held and the capacity into the shared stats (`dscache stats` reads them).
  void publish_gauges();
  // A safety net, run once a second by the daemon: a reader waiting on
  // blocks that are neither present nor being fetched (which no code path
  // should leave) is answered if they are all present, or gets the fills
  // it waits for; each is logged (warn). Bounds the wait whatever the cause.
  void revive_stalled_waiters();
  // Evicts until within capacity (also runs by itself after fills).
  void enforce_capacity();
  // Syncs the cache's file system and marks the index clean.
  void shutdown();

  const CacheLayout& layout() const { return layout_; }
  IndexWriter& index() { return *index_; }
  const IndexWriter::Recovery& recovery() const { return recovery_; }
  uint64_t bytes_cached() const { return bytes_cached_.load(); }
  uint64_t capacity_bytes() const;

  // Verifies every complete file's checksum (fsck). Returns the number that
  // failed; with repair, those become absent (refetched on next use).
  uint64_t verify_all(bool repair, std::string* report);

 private:
  struct Mount {
    MountConfig config;
    std::shared_ptr<ObjectStore> store;
    std::string dir;  // mirror directory
    MountStats* stats = nullptr;
    // A listing failed on the store as a whole (under mutex_): until then,
    // listings do not try again (stale ones serve, new ones fail at once).
    std::chrono::steady_clock::time_point outage_until{};
    Status outage;
  };
  struct BlockWaiter {
    uint64_t first, last;
    Reply reply;
  };
  struct BlockState {
    std::vector<BlockWaiter> waiters;
    std::set<uint64_t> in_flight;  // blocks being fetched
    uint64_t readahead_end = 0;    // where the last sequential request ended
    uint64_t window = 0;           // current readahead window, in bytes
    int writer_fd = -1;            // the mirror file, open for block writes
    uint32_t queued_runs = 0;      // this file's runs waiting in bulk_queue_
    uint32_t writer_generation = 0;  // the slot generation writer_fd was opened under
    // The file the waiters wait on (set with the last waiter), for
    // revive_stalled_waiters.
    Mount* mount = nullptr;
    std::string path;
    uint64_t slot_index = 0;
  };
  // A block fill's own file, whose blocks outside [keep_first, keep_last]
  // may be recycled when nothing else gives room (make_room).
  struct OwnBlocks {
    Mount* mount = nullptr;
    const std::string* path = nullptr;
    IndexKey key;
    uint64_t slot_index = 0;
    uint64_t keep_first = 0, keep_last = 0;
  };

  CacheManager(const Config& config, Options options);

  Mount* mount_by_id(uint64_t mount_id);
  std::string mirror_path(const Mount& mount, std::string_view path) const;
  std::string temp_path();
  int64_t now_ns() const;

  // cache_listing.cpp
  // Lists `dir` now, once for all who ask while it runs.
  void list_once(Mount& mount, const std::string& dir, const IndexKey& key, Priority priority, Reply reply);
  Status list_directory(Mount& mount, const std::string& dir);
  // DSCACHE_MTIME=metadata: the x-amz-meta-mtime of the listed objects that
  // are new or changed, by HEADs in parallel, into their meta_mtime_ns.
  Status head_listed_objects(Mount& mount, const std::string& dir, std::vector<ObjectInfo>& objects);
  // The mtime a file shows, one rule before and after its fetch: the
  // object's Last-Modified to the second (a GET's header has no more, where
  // some stores' listings have milliseconds), or under DSCACHE_MTIME=metadata
  // its x-amz-meta-mtime when it has one.
  int64_t shown_mtime(const ObjectInfo& info) const {
    if (config_.mtime_from_metadata && info.meta_mtime_ns) return *info.meta_mtime_ns;
    return info.last_modified_ns - info.last_modified_ns % 1'000'000'000;
  }
  Status reconcile_file(Mount& mount, int dir_fd, const std::string& dir_path, const std::string& path,
                        const std::string& name, const ObjectInfo& info);
  void remove_entry(Mount& mount, const std::string& path);
  // After a failed listing of `dir`: OK if it was listed before (then kept, retried in 30 s), else `failure`.
  Status serve_stale_listing(Mount& mount, const std::string& dir, const IndexKey& key, const Status& failure);
  // The mirror directory of `dir` and its missing parents (read-only, kMirrorDirMode).
  Status make_mirror_dirs(Mount& mount, const std::string& dir);
  // A large placeholder is marked for the kernel guard before it is renamed in.
  Status make_placeholder(const Mount& mount, const std::string& path, int dir_fd, const std::string& name,
                          uint64_t size, int64_t mtime_ns);
  // make_placeholder for `path`, in its directory (opened here).
  Status replace_with_placeholder(const Mount& mount, const std::string& path, uint64_t size, int64_t mtime_ns);
  // Looks up a file's slot, listing its directory first when needed.
  void with_file_slot(Mount& mount, const std::string& path, Priority priority,
                      std::function<void(Status, uint64_t slot, SlotSnapshot)> then);

  // cache_manager.cpp: the kernel guard's view of the cache.
  bool range_present(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length);
  // At start: marks every large file of the mirror that is not complete.
  void guard_partial_files();
  // Calls visit for every file in a mount's mirror (walked depth first).
  void for_each_mirror_file(Mount& mount,
                            const std::function<void(int dir_fd, const char* name, const std::string& path)>& visit);

  // cache_fill.cpp
  // `attempt`: as fetch_block_run's (a fill waiting for held blocks to go).
  void start_fill(Mount& mount, const std::string& path, const IndexKey& key, Priority priority, int attempt = 0);
  void finish_fill(Mount& mount, const std::string& path, const IndexKey& key, Status status);
  void verify_then_serve(Mount& mount, const std::string& path, const IndexKey& key, Priority priority);

  // cache_blocks.cpp
  // Blocks [first, last] of a file are being read past the shim's seqlock
  // (a read the kernel guard allowed, an aio read): not recycled for `ms` milliseconds.
  void hold_blocks(const IndexKey& key, uint64_t first, uint64_t last, uint32_t ms);
  // The kernel copies a read the guard let through after the answer.
  static constexpr uint32_t kGuardHoldMs = 1000;
  // A range just made present for a reader stays this long for it to check
  // and read (the shim asks again if it missed it, up to 8 times).
  static constexpr uint32_t kReplyHoldMs = 200;
  // The kernel guard's fill of a range: fetched, then held and checked.
  void guard_fill(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length, bool sequential,
                  Reply done, int attempt);
  uint64_t hold_clock() const;  // steady milliseconds
  void request_blocks(Mount& mount, const std::string& path, uint64_t slot_index, const SlotSnapshot& slot,
                      uint64_t first, uint64_t last, uint64_t readahead_last, Priority priority, Reply reply);
  // `bulk`: a background run counted against DSCACHE_FILL_STREAMS; its end
  // starts the next queued one.
  // `attempt`: a run the disk had no room for while blocks it could have
  // recycled were held waits for the holds to run out (kHeldRetries times).
  void fetch_block_run(Mount& mount, const std::string& path, const IndexKey& key, uint64_t slot_index,
                       uint64_t first, uint64_t last, Priority priority, bool bulk, int attempt = 0);
  static constexpr int kHeldRetries = 10;
  void bulk_run_done();
  // "<file> (<size>) is needed whole at once (...), and that does not fit".
  std::string whole_file_message(const Mount& mount, const std::string& path, uint64_t size) const;
  // `sums`: the blocks' checksums if the fetch computed them on the way.
  void blocks_arrived(Mount& mount, const std::string& path, const IndexKey& key, uint64_t slot_index,
                      uint64_t first, uint64_t last, uint32_t generation, Status status,
                      const std::vector<uint64_t>& sums);

  // cache_evict.cpp
  struct CachedFile {
    uint64_t slot = 0;
    IndexKey key;
    Mount* mount = nullptr;
    std::string path;
    uint64_t filled = 0;  // order of arrival in the cache
  };
  // A miss on `slot`: feeds the thrash detector.
  void note_miss(const SlotSnapshot& slot);
  // fsck of one block file: false if a present block's checksum is wrong.
  bool verify_blocks(Mount& mount, const std::string& path, uint64_t slot_index, const SlotSnapshot& slot, bool repair,
                     std::string* report, uint64_t& checked);
  void note_cached(Mount& mount, const std::string& path, uint64_t slot_index, const IndexKey& key);
  // Evicts until `bytes` more fit, then reserves them for a fill in flight
  // (so that concurrent fills cannot overshoot together); false if nothing
  // more can be evicted, with `why` saying which limit (DSCACHE_CACHE_SIZE, or
  // the file system's space). release() returns a reservation when its fill ends.
  // The order room is made in: files served through (the newest arrivals,
  // while the auto policy keeps the resident set) or least recently used
  // ones; then `own`'s blocks (a file larger than the room recycles its own,
  // farthest behind its readers first); then, when the policy kept the
  // resident set, it yields; then other large files' blocks outside their
  // readers' windows; then the fill goes beyond DSCACHE_CACHE_SIZE (never
  // beyond the disk's guard).
  bool make_room(uint64_t bytes, std::string* why = nullptr, const OwnBlocks* own = nullptr);
  // Drops up to `bytes` of `own`'s present blocks; false if none could go.
  bool recycle_blocks(const OwnBlocks& own, uint64_t bytes);
  // Another fill's last resort before going beyond the capacity: blocks of
  // large files being filled, outside their sequential readers' windows.
  bool recycle_other_files(uint64_t bytes);
  // The inode guard, for a new placeholder (fills write into existing ones
  // and need none): OK while more than DSCACHE_FREE_SPACE_RATIO of the file
  // system's inodes stay free, else ENOSPC "no free inodes on <file system>".
  // Evicting cannot help: it replaces a file by a placeholder, inode for inode.
  Status inode_room(const std::string& what, uint64_t count = 1);
  // A fill's write failed for lack of space or inodes (another writer filled
  // the disk after make_room() looked): the error names the file system, and
  // the guard evicts in the background.
  Status no_space(const std::string& what, const Status& failure);
  void release(uint64_t bytes) { reserved_.fetch_sub(bytes); }
  // `resident`: while the auto policy keeps the resident set, may it yield
  // (evict a resident file) if no file served through can go?
  bool evict_one(bool resident = true);
  // `through`: a file served through (counted as such in the stats).
  void evict(const CachedFile& file, bool through = false);
  void rebuild_accounting();
  void register_cached_files(Mount& mount);

  // cache_autowarm.cpp
  struct AutoWarmItem {
    Mount* mount = nullptr;
    std::string path;
    bool directory = false;
  };
  Status wait_for(const std::function<void(Reply)>& call);
  void maybe_auto_warm(Mount& mount);
  void auto_warm_worker();
  void stop_auto_warm();

  const Config config_;
  const CacheLayout layout_;
  DirWindows windows_;  // mirror directories are writable only while the daemon changes them
  Options options_;
  std::vector<Mount> mounts_;
  std::unique_ptr<IndexWriter> index_;
  IndexWriter::Recovery recovery_;
  std::shared_ptr<FetchEngine> engine_;
  std::unique_ptr<FillWriter> writer_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ContentGuard> guard_;

  mutable std::mutex mutex_;
  std::unordered_map<IndexKey, std::vector<Reply>, IndexKeyHash> listing_waiters_;
  // Listings the store failed lately (never listed before): asked again
  // within kFailedListingHold, the same failure answers at once instead of
  // another full retry sequence (`ls` of one directory asks two or three times).
  struct FailedListing {
    Status status;
    std::chrono::steady_clock::time_point at;
  };
  static constexpr std::chrono::seconds kFailedListingHold{10};
  std::unordered_map<IndexKey, FailedListing, IndexKeyHash> failed_listings_;
  // Listed-before directories served stale after a failed refresh: not
  // listed again before this time (kStaleRetry after the failure).
  static constexpr std::chrono::seconds kStaleRetry{30};
  std::unordered_map<IndexKey, std::chrono::steady_clock::time_point, IndexKeyHash> stale_until_;
  std::unordered_map<IndexKey, std::vector<Reply>, IndexKeyHash> fill_waiters_;
  // Per large file, per block: the time (hold_clock()) until which a
  // reader may still be reading it past the shim's check (a read the kernel
  // guard let through, an aio read, a range just fetched for a reader); a
  // held block is not recycled. Under holds_mutex_ alone, never with mutex_
  // taken after it: the guard's listener takes only this one, so that the
  // daemon's own punches (whose events that listener answers) cannot wait on it.
  std::mutex holds_mutex_;
  std::unordered_map<IndexKey, std::vector<uint64_t>, IndexKeyHash> holds_;
  std::unordered_map<IndexKey, BlockState, IndexKeyHash> blocks_;
  // Background block runs beyond DSCACHE_FILL_STREAMS wait here, in order
  // (their blocks are already marked in flight). A demand request for one of
  // them starts it at once.
  struct QueuedRun {
    Mount* mount = nullptr;
    std::string path;
    IndexKey key;
    uint64_t slot_index = 0, first = 0, last = 0;
  };
  std::deque<QueuedRun> bulk_queue_;
  uint64_t bulk_in_flight_ = 0;
  std::unordered_map<IndexKey, std::multiset<uint64_t>, IndexKeyHash> pins_;
  // Files holding data, for sampled LRU eviction (the index has no paths).
  std::vector<CachedFile> cached_;
  // The latest arrivals, newest at the back (at most kRecent): while the
  // cache keeps its resident set, these are served through (evicted first).
  static constexpr size_t kRecent = 1024;
  std::deque<IndexKey> recent_;
  std::unordered_map<IndexKey, size_t, IndexKeyHash> cached_position_;
  uint64_t evict_rng_ = 0x9E3779B97F4A7C15ull;
  uint64_t fill_counter_ = 0;
  // Share of recent misses that were for files this cache had evicted (a
  // moving average). High: the working set exceeds the cache and LRU is
  // cycling it; the evictor then keeps the resident set instead.
  double rereference_ratio_ = 0;
  std::atomic<uint64_t> bytes_cached_{0};
  std::atomic<uint64_t> reserved_{0};
  // Fills let in beyond DSCACHE_CACHE_SIZE because nothing could be evicted
  // then (fills in flight hold the room, files just filled): capacity is a
  // preference, never a read error. Evicted back as soon as files can go.
  std::atomic<uint64_t> over_capacity_fills_{0};
  std::atomic<int64_t> over_capacity_logged_s_{0};
  std::atomic<uint64_t> temp_counter_{0};
  std::atomic<int> in_flight_{0};
  std::mutex evict_mutex_;
  bool stopping_ = false;
  std::set<uint64_t> auto_warmed_;  // mounts whose auto-warm has started
  std::deque<AutoWarmItem> auto_warm_pending_;
  std::condition_variable auto_warm_cv_;
  std::vector<std::thread> auto_warm_threads_;
};

}  // namespace dscache
