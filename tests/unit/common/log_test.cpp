#include <doctest/doctest.h>

#include "common/log.h"

namespace dscache {

TEST_CASE("log_escape: control characters cannot forge a line or drive a terminal") {
  CHECK(log_escape("plain/key.jpg") == "plain/key.jpg");
  CHECK(log_escape("a\nb") == "a\\x0ab");
  CHECK(log_escape("x\r\tdscache[1] error: forged") == "x\\x0d\\x09dscache[1] error: forged");
  CHECK(log_escape("\x1b[31mred\x7f") == "\\x1b[31mred\\x7f");
  // A backslash is doubled, so an escape in the text is not mistaken for one we made.
  CHECK(log_escape("a\\x0ab") == "a\\\\x0ab");
  CHECK(log_escape(std::string_view("nul\0end", 7)) == "nul\\x00end");
  CHECK(log_escape("über-ß") == "über-ß");  // UTF-8 passes as it is
}

}  // namespace dscache
