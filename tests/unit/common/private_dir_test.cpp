#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "cache/mirror.h"
#include "common/private_dir.h"

namespace dscache {
namespace {

struct Scratch {
  std::string root;
  Scratch() {
    char dir[] = "/tmp/private-dir-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    root = dir;
  }
  ~Scratch() { remove_tree(root); }
  std::string make(const std::string& name, unsigned mode) const {
    std::string path = root + "/" + name;
    REQUIRE(::mkdir(path.c_str(), mode) == 0);
    REQUIRE(::chmod(path.c_str(), mode) == 0);  // past the umask
    return path;
  }
};

int open_dir(const std::string& path, std::string* error, bool create = false) {
  char text[1024] = "";
  PrivateDirOptions options;
  options.owner = ::geteuid();
  options.create = create;
  int fd = open_private_dir(path.c_str(), options, text, sizeof text);
  *error = text;
  if (fd >= 0) ::close(fd);
  return fd;
}

}  // namespace

TEST_CASE("open_private_dir: this user's private directory, made if missing, passes") {
  Scratch s;
  std::string error;
  CHECK(open_dir(s.make("mine", 0700), &error) >= 0);
  CHECK(open_dir(s.root + "/new/deeper/cache", &error, true) >= 0);
  struct stat st {};
  REQUIRE(::stat((s.root + "/new/deeper/cache").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(open_dir(s.root + "/missing", &error) == -ENOENT);
  CHECK(error.find("missing") != std::string::npos);
}

TEST_CASE("open_private_dir: a directory others can write, or a parent they can, is refused") {
  Scratch s;
  std::string error;
  CHECK(open_dir(s.make("open", 0777), &error) == -EPERM);
  CHECK(error.find("writable by other users") != std::string::npos);
  s.make("shared", 0777);  // not sticky: another user could rename what is in it
  REQUIRE(::mkdir((s.root + "/shared/cache").c_str(), 0700) == 0);
  CHECK(open_dir(s.root + "/shared/cache", &error) == -EPERM);
  CHECK(error.find("not sticky") != std::string::npos);
  s.make("sticky", 01777);  // /tmp: fine, as long as what is ours is ours
  REQUIRE(::mkdir((s.root + "/sticky/cache").c_str(), 0700) == 0);
  CHECK(open_dir(s.root + "/sticky/cache", &error) >= 0);
}

TEST_CASE("open_private_dir: another owner, of the directory, a parent or a link, is refused") {
  if (::geteuid() != 0) return;  // chown needs root
  Scratch s;
  std::string error;
  std::string theirs = s.make("theirs", 0700);
  REQUIRE(::chown(theirs.c_str(), 4242, 4242) == 0);
  CHECK(open_dir(theirs, &error) == -EPERM);
  CHECK(error.find("belongs to uid 4242") != std::string::npos);
  std::string parent = s.make("parent", 0755);
  REQUIRE(::mkdir((parent + "/cache").c_str(), 0700) == 0);
  REQUIRE(::chown(parent.c_str(), 4242, 4242) == 0);
  CHECK(open_dir(parent + "/cache", &error) == -EPERM);
  // A link: followed when it is ours, refused when another user planted it.
  std::string mine = s.make("mine", 0700);
  std::string link = s.root + "/link";
  REQUIRE(::symlink(mine.c_str(), link.c_str()) == 0);
  CHECK(open_dir(link, &error) >= 0);
  CHECK(open_dir(link + "/../mine", &error) >= 0);
  REQUIRE(::lchown(link.c_str(), 4242, 4242) == 0);
  CHECK(open_dir(link, &error) == -EPERM);
  CHECK(error.find("symbolic link") != std::string::npos);
}

TEST_CASE("open_private_subdir: a link or a file in a subdirectory's place is refused, not followed") {
  Scratch s;
  char error[1024];
  int root = ::open(s.root.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(root >= 0);
  int fd = open_private_subdir(root, s.root.c_str(), "tmp", ::geteuid(), 0700, error, sizeof error);
  CHECK(fd >= 0);
  if (fd >= 0) ::close(fd);
  std::string victim = s.make("victim", 0700);
  REQUIRE(::symlink(victim.c_str(), (s.root + "/run").c_str()) == 0);
  CHECK(open_private_subdir(root, s.root.c_str(), "run", ::geteuid(), 0700, error, sizeof error) < 0);
  CHECK(std::string(error).find("not a directory") != std::string::npos);
  ::close(root);
}

TEST_CASE("remove_tree: removes read-only mirror directories, and a link, never what it points to") {
  Scratch s;
  std::string victim = s.make("victim", 0700);
  REQUIRE(::close(::open((victim + "/keep").c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  std::string tree = s.make("tree", 0755);
  REQUIRE(::mkdir((tree + "/d").c_str(), 0755) == 0);
  REQUIRE(::close(::open((tree + "/d/f").c_str(), O_CREAT | O_WRONLY, 0444)) == 0);
  REQUIRE(::chmod((tree + "/d").c_str(), kMirrorDirMode) == 0);
  REQUIRE(::chmod(tree.c_str(), kMirrorDirMode) == 0);
  REQUIRE(::symlink(victim.c_str(), (s.root + "/tree-link").c_str()) == 0);
  remove_tree(s.root + "/tree-link");
  remove_tree(tree);
  CHECK(::access((victim + "/keep").c_str(), F_OK) == 0);
  CHECK(::access(tree.c_str(), F_OK) != 0);
  CHECK(::access((s.root + "/tree-link").c_str(), F_OK) != 0);
}

}  // namespace dscache
