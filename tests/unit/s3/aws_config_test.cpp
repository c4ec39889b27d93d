#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "s3/aws_config.h"

using namespace dscache;

namespace {

// A scratch HOME with ~/.aws files.
struct AwsHome {
  AwsHome() {
    char tmpl[] = "/tmp/dscache-awshome-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::string aws = dir + "/.aws";
    REQUIRE(::mkdir(aws.c_str(), 0700) == 0);
  }
  ~AwsHome() { std::system(("rm -rf '" + dir + "'").c_str()); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir + "/.aws/" + name) << text;
  }
  std::string dir;
};

using EnvMap = std::map<std::string, std::string, std::less<>>;

}  // namespace

TEST_CASE("INI files as the AWS CLI writes them") {
  auto ini = IniFile::parse(
      "# comment\n[default]\naws_access_key_id = AKID\n; other comment\n"
      "aws_secret_access_key=SECRET  \r\n\n[profile  dev]\nregion = eu-west-1\ns3 =\n"
      "  addressing_style = path\n  endpoint_url = http://x\nafter = 1\n",
      "config");
  REQUIRE(ini.ok());
  REQUIRE(ini->section("default"));
  CHECK(ini->section("default")->at("aws_access_key_id") == "AKID");
  CHECK(ini->section("default")->at("aws_secret_access_key") == "SECRET");
  const auto* dev = ini->section("profile dev");
  REQUIRE(dev);
  CHECK(dev->at("region") == "eu-west-1");
  CHECK(dev->at("s3.addressing_style") == "path");
  CHECK(dev->at("s3.endpoint_url") == "http://x");
  CHECK(dev->at("after") == "1");
  CHECK(dev->find("s3") == dev->end());
}

TEST_CASE("malformed INI files are errors naming the file and line") {
  auto no_equals = IniFile::parse("[default]\nthis is not a pair\n", "/home/u/.aws/config");
  REQUIRE_FALSE(no_equals.ok());
  CHECK(no_equals.status().message().find("/home/u/.aws/config:2") != std::string::npos);
  CHECK_FALSE(IniFile::parse("key = before section\n", "f").ok());
  CHECK_FALSE(IniFile::parse("[unterminated\n", "f").ok());
  CHECK(IniFile::parse("", "f").ok());
}

TEST_CASE("credentials from the environment win over files") {
  AwsHome home;
  home.write("credentials", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n");
  auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir},
                                                    {"AWS_ACCESS_KEY_ID", "ENVKEY"},
                                                    {"AWS_SECRET_ACCESS_KEY", "ENVSECRET"},
                                                    {"AWS_SESSION_TOKEN", "TOKEN"}}));
  REQUIRE(s.ok());
  CHECK(s->credentials.access_key_id == "ENVKEY");
  CHECK(s->credentials.secret_access_key == "ENVSECRET");
  CHECK(s->credentials.session_token == "TOKEN");
  CHECK(s->credentials_source == "environment");
  CHECK(s->region == "us-east-1");
  CHECK(s->endpoint.empty());
}

TEST_CASE("half-set environment credentials are errors naming the missing variable") {
  auto a = resolve_s3_settings(Env::from_map(EnvMap{{"AWS_ACCESS_KEY_ID", "K"}}));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().message().find("AWS_SECRET_ACCESS_KEY") != std::string::npos);
  auto b = resolve_s3_settings(Env::from_map(EnvMap{{"AWS_SECRET_ACCESS_KEY", "S"}}));
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().message().find("AWS_ACCESS_KEY_ID") != std::string::npos);
}

TEST_CASE("profiles: credentials file, then config file; region and endpoint from the profile") {
  AwsHome home;
  home.write("credentials",
             "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = DEFSECRET\n"
             "[dev]\naws_access_key_id = DEVKEY\naws_secret_access_key = DEVSECRET\naws_session_token = DEVTOKEN\n");
  home.write("config",
             "[default]\nregion = us-west-2\n"
             "[profile dev]\nregion = eu-central-1\nendpoint_url = https://minio.local:9000/\n"
             "s3 =\n  addressing_style = virtual\nmax_attempts = 7\n"
             "[profile cfgonly]\naws_access_key_id = CFGKEY\naws_secret_access_key = CFGSECRET\n"
             "services = mine\n"
             "[services mine]\ns3 =\n  endpoint_url = http://rgw:7480\n");

  auto def = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}}));
  REQUIRE(def.ok());
  CHECK(def->credentials.access_key_id == "DEFKEY");
  CHECK(def->region == "us-west-2");
  CHECK(def->credentials_source == "profile 'default' in " + home.dir + "/.aws/credentials");

  auto dev = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}, {"AWS_PROFILE", "dev"}}));
  REQUIRE(dev.ok());
  CHECK(dev->credentials.access_key_id == "DEVKEY");
  CHECK(dev->credentials.session_token == "DEVTOKEN");
  CHECK(dev->region == "eu-central-1");
  CHECK(dev->endpoint == "https://minio.local:9000");
  CHECK(dev->addressing == AddressingStyle::virtual_hosted);
  CHECK(dev->max_attempts == 7);

  auto cfg = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}, {"AWS_PROFILE", "cfgonly"}}));
  REQUIRE(cfg.ok());
  CHECK(cfg->credentials.access_key_id == "CFGKEY");
  CHECK(cfg->endpoint == "http://rgw:7480");

  SUBCASE("environment region and endpoint override the profile, service variable first") {
    auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir},
                                                      {"AWS_PROFILE", "dev"},
                                                      {"AWS_DEFAULT_REGION", "ap-south-1"},
                                                      {"AWS_ENDPOINT_URL", "http://global:1"},
                                                      {"AWS_ENDPOINT_URL_S3", "http://s3only:2"}}));
    REQUIRE(s.ok());
    CHECK(s->region == "ap-south-1");
    CHECK(s->endpoint == "http://s3only:2");
    auto r = resolve_s3_settings(Env::from_map(
        EnvMap{{"HOME", home.dir}, {"AWS_REGION", "sa-east-1"}, {"AWS_DEFAULT_REGION", "ap-south-1"}}));
    REQUIRE(r.ok());
    CHECK(r->region == "sa-east-1");
  }
  SUBCASE("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
    auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir},
                                                      {"AWS_PROFILE", "dev"},
                                                      {"AWS_ENDPOINT_URL", "http://global:1"},
                                                      {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}}));
    REQUIRE(s.ok());
    CHECK(s->endpoint.empty());
  }
  SUBCASE("an explicit profile that does not exist is an error") {
    auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}, {"AWS_PROFILE", "nope"}}));
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message().find("AWS_PROFILE='nope'") != std::string::npos);
  }
  SUBCASE("AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE move the files") {
    home.write("other-creds", "[default]\naws_access_key_id = OTHER\naws_secret_access_key = S\n");
    auto s = resolve_s3_settings(
        Env::from_map(EnvMap{{"HOME", "/nonexistent"},
                             {"AWS_SHARED_CREDENTIALS_FILE", home.dir + "/.aws/other-creds"},
                             {"AWS_CONFIG_FILE", home.dir + "/.aws/config"}}));
    REQUIRE(s.ok());
    CHECK(s->credentials.access_key_id == "OTHER");
    CHECK(s->region == "us-west-2");
  }
}

TEST_CASE("no credentials at all: a clear error, never silent anonymous access") {
  AwsHome home;
  auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}}));
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == EACCES);
  CHECK(s.status().message().find("DSCACHE_S3_ANONYMOUS") != std::string::npos);

  auto anon = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}, {"DSCACHE_S3_ANONYMOUS", "1"}}));
  REQUIRE(anon.ok());
  CHECK(anon->anonymous);
  CHECK(anon->credentials.access_key_id.empty());

  auto bad = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}, {"DSCACHE_S3_ANONYMOUS", "maybe"}}));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("DSCACHE_S3_ANONYMOUS='maybe'") != std::string::npos);
}

TEST_CASE("unsupported credential sources say so") {
  AwsHome home;
  home.write("config", "[default]\ncredential_process = /bin/get-creds\n");
  auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}}));
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("credential_process") != std::string::npos);
}

TEST_CASE("malformed values name their source") {
  const EnvMap creds{{"AWS_ACCESS_KEY_ID", "K"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"HOME", "/nonexistent"}};
  auto with = [&](std::string name, std::string value) {
    EnvMap env = creds;
    env[name] = value;
    return resolve_s3_settings(Env::from_map(env));
  };
  for (const char* url : {"localhost:9000", "ftp://x", "http://", "http://host:99999", "http://h/?q=1", "http://u@h"}) {
    auto s = with("AWS_ENDPOINT_URL", url);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message().find("AWS_ENDPOINT_URL=") == 0);
  }
  CHECK(with("AWS_ENDPOINT_URL", "http://[::1]:9000/").ok());
  CHECK(with("AWS_ENDPOINT_URL", "http://[::1]:9000/")->endpoint == "http://[::1]:9000");
  CHECK_FALSE(with("AWS_MAX_ATTEMPTS", "zero").ok());
  CHECK_FALSE(with("AWS_MAX_ATTEMPTS", "0").ok());
  CHECK(with("AWS_MAX_ATTEMPTS", "3")->max_attempts == 3);
  CHECK_FALSE(with("DSCACHE_S3_ADDRESSING_STYLE", "dns").ok());
  CHECK(with("DSCACHE_S3_ADDRESSING_STYLE", "path")->addressing == AddressingStyle::path);
  CHECK_FALSE(with("AWS_REGION", "us east 1").ok());
  CHECK(with("AWS_CA_BUNDLE", "/etc/ca.pem")->ca_bundle == "/etc/ca.pem");
}

TEST_CASE("an unreadable credentials file is an error, a missing one is not") {
  AwsHome home;
  auto missing = resolve_s3_settings(Env::from_map(
      EnvMap{{"AWS_SHARED_CREDENTIALS_FILE", home.dir + "/none"}, {"AWS_ACCESS_KEY_ID", "K"}, {"AWS_SECRET_ACCESS_KEY", "S"}}));
  CHECK(missing.ok());
  auto directory = resolve_s3_settings(Env::from_map(
      EnvMap{{"AWS_SHARED_CREDENTIALS_FILE", home.dir}, {"AWS_ACCESS_KEY_ID", "K"}, {"AWS_SECRET_ACCESS_KEY", "S"}}));
  CHECK_FALSE(directory.ok());
}

TEST_CASE("a credential set comes from one file: never a key from one and a token from the other") {
  AwsHome home;
  home.write("credentials", "[default]\naws_access_key_id = LONGTERM\naws_secret_access_key = S\n");
  home.write("config", "[default]\naws_session_token = STALE\nregion = eu-west-1\n"
                       "[profile legacy]\naws_access_key_id = K\naws_secret_access_key = S\n"
                       "aws_security_token = OLDTOKEN\n");
  auto s = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}}));
  REQUIRE(s.ok());
  CHECK(s->credentials.access_key_id == "LONGTERM");
  CHECK(s->credentials.session_token.empty());
  CHECK(s->region == "eu-west-1");
  auto legacy = resolve_s3_settings(Env::from_map(EnvMap{{"HOME", home.dir}, {"AWS_PROFILE", "legacy"}}));
  REQUIRE(legacy.ok());
  CHECK(legacy->credentials.session_token == "OLDTOKEN");
}

TEST_CASE("a rejected endpoint URL never echoes its password") {
  auto s = resolve_s3_settings(Env::from_map(EnvMap{{"AWS_ACCESS_KEY_ID", "K"},
                                                    {"AWS_SECRET_ACCESS_KEY", "S"},
                                                    {"HOME", "/nonexistent"},
                                                    {"AWS_ENDPOINT_URL", "https://user:hunter2@host:9000"}}));
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("hunter2") == std::string::npos);
  CHECK(s.status().message().find("https://***@host:9000") != std::string::npos);
}
