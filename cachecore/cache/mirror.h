// The cache directory's layout and the namespace mirror's naming rules.
//
//   <cache dir>/index               the shared index (index/)
//   <cache dir>/daemon.lock         flock: exactly one daemon per cache dir
//   <cache dir>/daemon.log          the log of a daemon started on demand
//   <cache dir>/run/daemon.sock     the daemon's socket (run/ is mode 0700)
//   <cache dir>/tmp/                fills and placeholders before rename()
//   <cache dir>/mirror/<mount id>/  one mount's namespace: real directories,
//                                   files of the objects' exact sizes
//
// Mirror naming rule: an object key maps to the path of the same name under
// its mount's directory. A key that cannot be a path is left out of the
// mirror (and logged): a key with an empty segment ("a//b"), a "." or ".."
// segment, or a segment over 255 bytes. When a key is both an object and a
// prefix ("a" and "a/b"), the directory wins. Control characters and any
// other bytes are kept. No key can name a path outside its mount directory.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"

namespace dscache {

struct CacheLayout {
  explicit CacheLayout(std::string root_dir) : root(std::move(root_dir)) {}
  std::string index_path() const { return root + "/index"; }
  std::string lock_path() const { return root + "/daemon.lock"; }
  std::string log_path() const { return root + "/daemon.log"; }
  std::string run_dir() const { return root + "/run"; }
  std::string tmp_dir() const { return root + "/tmp"; }
  std::string mirror_root() const { return root + "/mirror"; }
  std::string mount_dir(const MountConfig& mount) const { return mirror_root() + "/" + mount.id_hex; }

  std::string root;
};

enum class NameProblem : uint8_t { none, empty_segment, dot_segment, too_long, nul };

// Whether `path` (relative to a mount, "" for its root) can be a mirror path.
NameProblem check_mirror_path(std::string_view path);
const char* describe(NameProblem problem);

// "a/b/c" -> "a/b"; "c" -> "".
std::string_view parent_of(std::string_view path);
// "a/b/c" -> "c".
std::string_view name_of(std::string_view path);

// Creates `dir` and its missing parents with `mode`.
Status make_directories(const std::string& dir, unsigned mode);
// Removes a file or a whole directory tree; errors are ignored.
void remove_tree(const std::string& path);

}  // namespace dscache
