#include "cache/mirror.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dscache {

NameProblem check_mirror_path(std::string_view path) {
  if (path.empty()) return NameProblem::none;  // the mount's root
  if (path.find('\0') != std::string_view::npos) return NameProblem::nul;
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view segment = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (segment.empty()) return NameProblem::empty_segment;
    if (segment == "." || segment == "..") return NameProblem::dot_segment;
    if (segment.size() > 255) return NameProblem::too_long;
    if (end == std::string_view::npos) return NameProblem::none;
    start = end + 1;
  }
}

const char* describe(NameProblem problem) {
  switch (problem) {
    case NameProblem::none: return "valid";
    case NameProblem::empty_segment: return "it has an empty path segment ('//', or a leading or trailing '/')";
    case NameProblem::dot_segment: return "it has a '.' or '..' segment";
    case NameProblem::too_long: return "a path segment is longer than 255 bytes";
    case NameProblem::nul: return "it contains a NUL byte";
  }
  return "?";
}

std::string_view parent_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

std::string_view name_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

Status make_directories(const std::string& dir, unsigned mode) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return Status::error(errno, partial + ": cannot create directory: " + errno_name(errno));
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::error(ENOTDIR, dir + ": exists and is not a directory");
  }
  return {};
}

namespace {

// Removes what the directory `fd` holds (fd is closed).
void clear_directory(int fd) {
  ::fchmod(fd, 0700);  // a read-only mirror directory
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return;
  }
  const int self = ::dirfd(dir);
  while (struct dirent* d = ::readdir(dir)) {
    std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    int child = ::openat(self, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child >= 0) {
      clear_directory(child);
      ::unlinkat(self, d->d_name, AT_REMOVEDIR);
    } else {
      ::unlinkat(self, d->d_name, 0);  // a file, or a link (removed, not followed)
    }
  }
  ::closedir(dir);
}

}  // namespace

void remove_tree(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ::unlink(path.c_str());
    return;
  }
  clear_directory(fd);
  ::rmdir(path.c_str());
}

void remove_tree_contents(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) clear_directory(fd);
}

DirWindows::Window::Window(DirWindows& windows, int dir_fd) : windows_(windows), fd_(dir_fd) {
  struct stat st {};
  if (dir_fd < 0 || ::fstat(dir_fd, &st) != 0) return;
  key_ = {st.st_dev, st.st_ino};
  std::lock_guard lock(windows_.mutex_);
  int& count = windows_.open_[key_];
  if (count++ == 0) ::fchmod(fd_, kMirrorDirOpenMode);
  held_ = true;
}

DirWindows::Window::~Window() {
  if (!held_) return;
  std::lock_guard lock(windows_.mutex_);
  auto it = windows_.open_.find(key_);
  if (--it->second == 0) {
    ::fchmod(fd_, kMirrorDirMode);
    windows_.open_.erase(it);
  }
}

int open_for_filling(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES && ::chmod(path.c_str(), kMirrorFileMode | S_IWUSR) == 0) {
    fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd >= 0) ::fchmod(fd, kMirrorFileMode);
  return fd;
}

}  // namespace dscache
