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

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

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

// The mirror is read-only for its owner too: a program that lost the shim
// (a scrubbed environment, a static binary) and has its cwd in the mirror
// cannot create, change or delete anything there. The daemon makes a
// directory writable while it changes it (DirWindows), and writes files
// through fds it opened while they were writable (open_for_filling).
inline constexpr unsigned kMirrorDirMode = 0555;
inline constexpr unsigned kMirrorDirOpenMode = 0755;
inline constexpr unsigned kMirrorFileMode = 0444;

// Windows during which mirror directories are writable by their owner.
// Windows on one directory overlap across threads: it is writable while any
// is open, read-only again when the last closes.
class DirWindows {
 public:
  class Window {
   public:
    // `dir_fd`: the directory, opened O_RDONLY (fchmod needs a real fd); it
    // must stay open until the window closes.
    Window(DirWindows& windows, int dir_fd);
    ~Window();
    Window(const Window&) = delete;
    Window& operator=(const Window&) = delete;

   private:
    DirWindows& windows_;
    int fd_;
    std::pair<dev_t, ino_t> key_{};
    bool held_ = false;
  };

 private:
  std::mutex mutex_;
  std::map<std::pair<dev_t, ino_t>, int> open_;
};

// Opens a mirror file (kMirrorFileMode) for writing the daemon's fills into:
// made writable for the open, read-only again at once (the fd keeps writing).
// -1 with errno on failure.
int open_for_filling(const std::string& path);

// Creates `dir` and its missing parents with `mode`.
Status make_directories(const std::string& dir, unsigned mode);
// Removes a file or a whole directory tree, never following a link and
// making read-only directories writable first; errors are ignored.
void remove_tree(const std::string& path);
// Removes what is in `dir`, not `dir` itself.
void remove_tree_contents(const std::string& dir);

}  // namespace dscache
