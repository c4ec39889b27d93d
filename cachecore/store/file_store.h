// FileStore: a directory on a (slow, shared) file system as an object store:
// NFS, Lustre, GPFS, CephFS, or a local path. Keys are relative paths.
#pragma once

#include <memory>

#include "store/object_store.h"

namespace dscache {

class FileStore final : public ObjectStore {
 public:
  // `root` must be an existing directory.
  static Result<std::unique_ptr<FileStore>> open(std::string root);

  const std::string& root() const { return root_; }

 private:
  explicit FileStore(std::string root);

  Result<ObjectInfo> head_impl(std::string_view key) override;
  Result<ListPage> list_impl(const ListRequest& request) override;
  Result<GetResult> get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink) override;

  Result<std::string> path_of(std::string_view key) const;
  Result<std::vector<ListEntry>> list_directory(const ListRequest& request) const;
  Result<std::vector<ObjectInfo>> walk(const std::string& prefix) const;

  std::string root_;  // no trailing slash
};

}  // namespace dscache
