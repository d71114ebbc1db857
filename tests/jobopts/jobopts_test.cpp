// lib/jobopts: what the table says holds for every argument it lists (a wrong type is refused
// naming the key; a value set survives the trip through the request and the stored form);
// defaults are left out of both forms; unknown keys, missing required ones and the pair that
// excludes each other are refused; the job options alone ignore the envelope.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "jobopts/jobopts.hpp"

using namespace p2x::jobopts;
using Catch::Contains;
using nlohmann::json;

namespace {

// A complete submit with every argument at its default.
json minimal() {
  SubmitArgs a;
  a.project = "P";
  a.pacs = "PACS1";
  a.csv_base64 = "QQ==";
  return to_json(a);
}

std::string refusal(const json& args, OptionError::Kind* kind = nullptr) {
  try {
    submit_args_from(args);
  } catch (const OptionError& e) {
    if (kind) *kind = e.kind;
    return e.what();
  }
  FAIL("accepted: " + args.dump());
  return {};
}

}  // namespace

TEST_CASE("the request holds the envelope and only options that differ from defaults",
          "[jobopts]") {
  CHECK(minimal() == json{{"project", "P"}, {"pacs", "PACS1"}, {"csv_base64", "QQ=="}});
  SubmitArgs a = submit_args_from(minimal());
  CHECK(a.csv_name.empty());
  CHECK_FALSE(a.allow_duplicate);
  CHECK(to_json(a.options) == json::object());
}

TEST_CASE("every argument of the table is read, written and type-checked", "[jobopts]") {
  std::set<std::string> keys;
  for (const Spec& spec : specs()) {
    INFO(spec.key);
    CHECK(keys.insert(spec.key).second);  // no key twice
    CHECK((spec.flag_in == nullptr) != (spec.text_in == nullptr));
    CHECK(is_job_option(spec.key) == spec.job_option);
    json args = minimal();
    const json value = spec.flag_in ? json(true) : json("MR");
    args[spec.key] = value;
    const SubmitArgs a = submit_args_from(args);
    CHECK(to_json(a).at(spec.key) == value);
    if (spec.job_option) {
      CHECK(to_json(a.options).at(spec.key) == value);
      CHECK(to_json(job_options_from(args)).at(spec.key) == value);
    } else {
      CHECK_FALSE(to_json(a.options).contains(spec.key));
    }
    args[spec.key] = spec.flag_in ? json("yes") : json(3);
    OptionError::Kind kind{};
    CHECK(refusal(args, &kind) ==
          "\"" + std::string(spec.key) + "\"" +
              (spec.flag_in ? " must be true or false, not string" : " must be text, not number"));
    CHECK(kind == OptionError::Value);
    if (spec.required) {
      args.erase(spec.key);
      CHECK(refusal(args, &kind) == "submit needs \"" + std::string(spec.key) + "\"");
      CHECK(kind == OptionError::Missing);
    }
  }
  CHECK(keys.count("modality"));
  CHECK(keys.count("allow_duplicate"));
  CHECK_FALSE(is_job_option("allow_duplicate"));
  CHECK_FALSE(is_job_option("colour"));
}

TEST_CASE("limits, rules, exclusions and unknown keys", "[jobopts]") {
  json args = minimal();
  args["modality"] = "M/R";
  CHECK_THAT(refusal(args), Contains("\"modality\" \"M/R\" is not a DICOM modality"));
  args["modality"] = std::string(17, 'M');
  CHECK(refusal(args) == "\"modality\" is longer than 16 characters");
  args = minimal();
  args["csv_name"] = "a\tb.csv";
  CHECK(refusal(args) == "\"csv_name\" holds control characters");
  args = minimal();
  args["skip_existing"] = true;
  args["append"] = true;
  CHECK_THAT(refusal(args), Contains("\"skip_existing\" and \"append\" exclude each other"));
  CHECK_THROWS_AS(job_options_from(args), OptionError);
  args["append"] = false;
  CHECK(submit_args_from(args).options.skip_existing);

  args = minimal();
  args["colour"] = "red";
  OptionError::Kind kind{};
  CHECK(refusal(args, &kind) ==
        "unknown submit option \"colour\" (is the CLI newer than the daemon?)");
  CHECK(kind == OptionError::Unknown);
  // A stored job's options: the envelope and other keys are not its business.
  CHECK(job_options_from(json{{"colour", "red"}, {"strict", true}}).strict);
  CHECK_THROWS_WITH(job_options_from(json::array()), "the job options must be a JSON object");
}
