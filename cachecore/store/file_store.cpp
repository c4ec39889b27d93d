#include "store/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <vector>

#include "common/log.h"

namespace dscache {
namespace {

constexpr size_t kReadChunk = 1 << 20;

int64_t mtime_ns_of(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// A file's identity as a store ETag: a rewrite in place changes size or mtime,
// a replace-by-rename changes the inode.
std::string etag_of(const struct stat& st) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "f-%lx-%lx-%lx", static_cast<unsigned long>(st.st_ino),
                static_cast<unsigned long>(st.st_size), static_cast<unsigned long>(mtime_ns_of(st)));
  return buf;
}

ObjectInfo info_of(std::string key, const struct stat& st) {
  ObjectInfo info;
  info.key = std::move(key);
  info.size = static_cast<uint64_t>(st.st_size);
  info.etag = etag_of(st);
  info.last_modified_ns = mtime_ns_of(st);
  return info;
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

FileStore::FileStore(std::string root) : ObjectStore("file://" + root + "/"), root_(std::move(root)) {}

Result<std::unique_ptr<FileStore>> FileStore::open(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty() || root[0] != '/') return Status::error(EINVAL, "file://" + root + ": the path must be absolute");
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) {
    return Status::error(errno, "file://" + root + ": " + errno_name(errno) + " (the store directory must exist)");
  }
  if (!S_ISDIR(st.st_mode)) return Status::error(ENOTDIR, "file://" + root + ": not a directory");
  if (root == "/") root.clear();
  return std::unique_ptr<FileStore>(new FileStore(std::move(root)));
}

Result<std::string> FileStore::path_of(std::string_view key) const {
  // Keys never leave the root: no "." or ".." segments.
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view segment = key.substr(start, end - start);
    if (segment == "." || segment == "..") {
      return Status::error(EINVAL, describe(key) + ": key has a '.' or '..' segment");
    }
    start = end + 1;
  }
  return root_ + "/" + std::string(key);
}

Result<ObjectInfo> FileStore::head_impl(std::string_view key) {
  auto path = path_of(key);
  if (!path.ok()) return path.status();
  struct stat st {};
  if (::stat(path->c_str(), &st) != 0) return Status::error(errno, describe(key) + ": " + errno_name(errno));
  if (!S_ISREG(st.st_mode)) return Status::error(ENOENT, describe(key) + ": not a regular file");
  return info_of(std::string(key), st);
}

Result<std::vector<ListEntry>> FileStore::list_directory(const ListRequest& request) const {
  size_t slash = request.prefix.rfind('/');
  std::string dir_part = slash == std::string::npos ? "" : request.prefix.substr(0, slash + 1);
  std::string name_part = request.prefix.substr(dir_part.size());
  std::string path = root_ + "/";
  if (!dir_part.empty()) {
    auto dir_path = path_of(dir_part);
    if (!dir_path.ok()) return dir_path.status();
    path = std::move(*dir_path);
  }

  std::vector<ListEntry> entries;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) return entries;  // S3: an absent prefix lists nothing
    return Status::error(errno, describe(dir_part) + ": cannot list: " + errno_name(errno));
  }
  int dfd = ::dirfd(dir);
  int saved = 0;
  while (true) {
    errno = 0;  // readdir reports the end and an error alike, by errno alone
    struct dirent* d = ::readdir(dir);
    if (d == nullptr) {
      saved = errno;
      break;
    }
    std::string_view name = d->d_name;
    if (name == "." || name == ".." || !name.starts_with(name_part)) continue;
    struct stat st {};
    if (::fstatat(dfd, d->d_name, &st, 0) != 0) continue;  // vanished or a dangling link
    std::string key = dir_part + std::string(name);
    if (S_ISDIR(st.st_mode)) {
      entries.push_back({key + "/", true, {}});
    } else if (S_ISREG(st.st_mode)) {
      entries.push_back({key, false, info_of(key, st)});
    }
  }
  ::closedir(dir);
  if (saved != 0) return Status::error(saved, describe(dir_part) + ": cannot list: " + errno_name(saved));
  // An empty directory still exists: listed, it shows what S3 shows for one,
  // its "dir/" marker object (else it would be taken for a vanished prefix).
  if (!dir_part.empty() && name_part.empty() && entries.empty()) {
    ObjectInfo marker;
    marker.key = dir_part;
    entries.push_back({dir_part, false, std::move(marker)});
  }
  std::sort(entries.begin(), entries.end(), [](const ListEntry& a, const ListEntry& b) { return a.key < b.key; });
  return entries;
}

Result<std::vector<ObjectInfo>> FileStore::walk(const std::string& prefix) const {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> pending{prefix.substr(0, prefix.rfind('/') + 1)};  // "" or "dir/"
  // Directories already walked, so that a symlink loop (latest -> .) is
  // listed once instead of until ELOOP.
  std::set<std::pair<dev_t, ino_t>> visited;
  while (!pending.empty()) {
    std::string dir_key = std::move(pending.back());
    pending.pop_back();
    struct stat st {};
    if (::stat((root_ + "/" + dir_key).c_str(), &st) == 0 && !visited.insert({st.st_dev, st.st_ino}).second) {
      DSCACHE_LOG(info, "%s: not listed again: a symlink leads back to a directory already listed",
                  describe(dir_key).c_str());
      continue;
    }
    ListRequest one_level;
    one_level.prefix = dir_key;
    auto entries = list_directory(one_level);
    if (!entries.ok()) return entries.status();
    for (auto& entry : *entries) {
      if (entry.is_prefix) {
        pending.push_back(std::move(entry.key));
      } else if (entry.key.starts_with(prefix) && entry.key.back() != '/') {  // (not the directory markers)
        objects.push_back(std::move(entry.info));
      }
    }
  }
  std::sort(objects.begin(), objects.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return objects;
}

Result<ListPage> FileStore::list_impl(const ListRequest& request) {
  if (request.delimiter == "/") {
    auto entries = list_directory(request);
    if (!entries.ok()) return entries.status();
    return paginate(std::move(*entries), request);
  }
  auto objects = walk(request.prefix);
  if (!objects.ok()) return objects.status();
  return list_sorted(*objects, request);
}

Result<GetResult> FileStore::get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink) {
  auto path = path_of(key);
  if (!path.ok()) return path.status();
  FdCloser file{::open(path->c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) return Status::error(errno, describe(key) + ": " + errno_name(errno));
  struct stat before {};
  if (::fstat(file.fd, &before) != 0) return Status::error(errno, describe(key) + ": " + errno_name(errno));
  if (!S_ISREG(before.st_mode)) return Status::error(ENOENT, describe(key) + ": not a regular file");

  GetResult result;
  result.info = info_of(std::string(key), before);
  if (!request.if_match.empty() && request.if_match != result.info.etag) {
    return Status::error(ESTALE, describe(key) + ": file changed in the store (no longer the version being read)");
  }
  auto [offset, length] = resolve_range(request.range, result.info.size);
  result.offset = offset;

  std::vector<std::byte> buffer(std::min<uint64_t>(length, kReadChunk));
  uint64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), length - done));
    ssize_t n = ::pread(file.fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(errno, describe(key) + ": read failed: " + errno_name(errno));
    }
    if (n == 0) break;  // shrank while reading: caught by the identity check below
    if (Status s = sink.write_at(offset + done, std::span(buffer).first(static_cast<size_t>(n))); !s.ok()) return s;
    done += static_cast<uint64_t>(n);
  }
  struct stat after {};
  if (::fstat(file.fd, &after) != 0) return Status::error(errno, describe(key) + ": " + errno_name(errno));
  if (etag_of(after) != result.info.etag || done != length) {
    return Status::error(ESTALE, describe(key) + ": file changed in the store while it was read");
  }
  result.length = done;
  return result;
}

}  // namespace dscache
