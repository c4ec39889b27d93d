// DSCACHE_AUTO_WARM: after a mount's first miss, warm the whole mount in the
// background. Every request it makes is background priority, so the fetch
// engine and the worker pool serve a job's demand misses first.
#include <dirent.h>

#include "cache/cache_manager.h"
#include "common/log.h"

namespace dscache {

namespace {
constexpr int kAutoWarmWorkers = 8;
}  // namespace

Status CacheManager::wait_for(const std::function<void(Reply)>& call) {
  std::mutex m;
  std::condition_variable cv;
  std::optional<Status> result;
  call([&](Status s) {
    std::lock_guard lock(m);
    result = std::move(s);
    cv.notify_all();
  });
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return result.has_value(); });
  return *result;
}

void CacheManager::maybe_auto_warm(Mount& mount) {
  if (!config_.auto_warm) return;
  {
    std::lock_guard lock(mutex_);
    if (!auto_warmed_.insert(mount.config.id).second || stopping_) return;
    auto_warm_pending_.push_back(AutoWarmItem{&mount, "", true});
  }
  DSCACHE_LOG(info, "auto-warm of %s (%s) starts", mount.config.prefix, mount.config.url);
  std::lock_guard lock(mutex_);
  if (auto_warm_threads_.empty()) {
    for (int i = 0; i < kAutoWarmWorkers; ++i) auto_warm_threads_.emplace_back([this] { auto_warm_worker(); });
  }
  auto_warm_cv_.notify_all();
}

void CacheManager::auto_warm_worker() {
  while (true) {
    AutoWarmItem item;
    {
      std::unique_lock lock(mutex_);
      auto_warm_cv_.wait(lock, [this] { return stopping_ || !auto_warm_pending_.empty(); });
      if (stopping_) return;
      item = std::move(auto_warm_pending_.front());
      auto_warm_pending_.pop_front();
    }
    Mount& mount = *item.mount;
    if (!item.directory) {
      Status s = wait_for([&](Reply r) { complete_file(mount.config.id, item.path, Priority::background, r); });
      if (!s.ok()) DSCACHE_LOG(info, "auto-warm: %s", s.message().c_str());
      continue;
    }
    Status s = wait_for([&](Reply r) { ensure_listed(mount.config.id, item.path, Priority::background, r); });
    if (!s.ok()) {
      DSCACHE_LOG(info, "auto-warm: %s", s.message().c_str());
      continue;
    }
    std::vector<AutoWarmItem> found;
    if (DIR* d = ::opendir(mirror_path(mount, item.path).c_str())) {
      while (struct dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string child = item.path.empty() ? std::string(name) : item.path + "/" + std::string(name);
        found.push_back(AutoWarmItem{&mount, std::move(child), e->d_type == DT_DIR});
      }
      ::closedir(d);
    }
    std::lock_guard lock(mutex_);
    for (auto& f : found) auto_warm_pending_.push_back(std::move(f));
    auto_warm_cv_.notify_all();
  }
}

void CacheManager::stop_auto_warm() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads = std::move(auto_warm_threads_);
  }
  auto_warm_cv_.notify_all();
  for (auto& t : threads) t.join();
}

}  // namespace dscache
