#include <doctest/doctest.h>

#include <set>

#include "store/memory_store.h"

using namespace dscache;

namespace {

std::vector<std::string> keys_of(const ListPage& page) {
  std::vector<std::string> out;
  for (const auto& o : page.objects) out.push_back(o.key);
  return out;
}

// Lists every page and returns objects and prefixes, checking that pages chain.
std::pair<std::vector<std::string>, std::vector<std::string>> list_all(ObjectStore& store, ListRequest request) {
  std::vector<std::string> objects, prefixes;
  int pages = 0;
  do {
    auto page = store.list(request);
    REQUIRE(page.ok());
    CHECK(page->objects.size() + page->common_prefixes.size() <= request.max_keys);
    for (auto& k : keys_of(*page)) objects.push_back(k);
    for (auto& p : page->common_prefixes) prefixes.push_back(p);
    CHECK(page->truncated == !page->next_continuation.empty());
    request.continuation = page->next_continuation;
    REQUIRE(++pages < 10000);
  } while (!request.continuation.empty());
  return {objects, prefixes};
}

}  // namespace

TEST_CASE("S3 listing semantics: prefix, delimiter, pages, start-after") {
  MemoryStore store;
  for (const char* key : {"a", "a/", "a/b", "a/c/d", "a+b", "a0", "b/x", "b/y/z", "c"}) store.put(key, "x");

  ListRequest root;
  root.delimiter = "/";
  auto [objects, prefixes] = list_all(store, root);
  CHECK(objects == std::vector<std::string>{"a", "a+b", "a0", "c"});
  CHECK(prefixes == std::vector<std::string>{"a/", "b/"});

  ListRequest a;
  a.prefix = "a/";
  a.delimiter = "/";
  auto [a_objects, a_prefixes] = list_all(store, a);
  CHECK(a_objects == std::vector<std::string>{"a/", "a/b"});  // "a/" is a directory marker object
  CHECK(a_prefixes == std::vector<std::string>{"a/c/"});

  ListRequest flat;
  flat.max_keys = 2;
  auto [all, none] = list_all(store, flat);
  CHECK(all.size() == 9);
  CHECK(none.empty());
  CHECK(std::is_sorted(all.begin(), all.end()));

  ListRequest paged_with_prefixes;
  paged_with_prefixes.delimiter = "/";
  paged_with_prefixes.max_keys = 1;
  auto [p_objects, p_prefixes] = list_all(store, paged_with_prefixes);
  CHECK(p_objects == objects);
  CHECK(p_prefixes == prefixes);

  ListRequest after;
  after.start_after = "a0";
  auto page = store.list(after);
  REQUIRE(page.ok());
  CHECK(keys_of(*page) == std::vector<std::string>{"b/x", "b/y/z", "c"});

  ListRequest partial_prefix;
  partial_prefix.prefix = "b/y";
  partial_prefix.delimiter = "/";
  auto by = store.list(partial_prefix);
  REQUIRE(by.ok());
  CHECK(by->objects.empty());
  CHECK(by->common_prefixes == std::vector<std::string>{"b/y/"});

  ListRequest nothing;
  nothing.prefix = "zzz/";
  auto empty = store.list(nothing);
  REQUIRE(empty.ok());
  CHECK(empty->objects.empty());
  CHECK_FALSE(empty->truncated);
}

TEST_CASE("listing carries no user metadata, HEAD does") {
  MemoryStore store;
  store.put("k", "bytes", int64_t{42});
  auto page = store.list({});
  REQUIRE(page.ok());
  CHECK_FALSE(page->objects.at(0).meta_mtime_ns);
  auto head = store.head("k");
  REQUIRE(head.ok());
  CHECK(head->mtime_ns() == 42);
}

TEST_CASE("list requests are checked") {
  MemoryStore store;
  ListRequest zero;
  zero.max_keys = 0;
  CHECK(store.list(zero).status().code() == EINVAL);
}
