#include "cache/mirror.h"

#include <dirent.h>
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

void remove_tree(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    ::unlink(path.c_str());
    return;
  }
  while (struct dirent* d = ::readdir(dir)) {
    std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    std::string child = path + "/" + std::string(name);
    struct stat st {};
    if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      remove_tree(child);
    } else {
      ::unlink(child.c_str());
    }
  }
  ::closedir(dir);
  ::rmdir(path.c_str());
}

}  // namespace dscache
