// metrics/metrics: Prometheus families for the import (see metrics.hpp for what is measured).
#include "metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <sstream>

namespace p2x::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::int64_t system_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// XNAT answers in milliseconds (a listing) to minutes (a large upload).
const prometheus::Histogram::BucketBoundaries kLatencyBuckets{
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

MetricFamily gauge_family(std::string name, std::string help) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = MetricType::Gauge;
  return f;
}

void add_gauge(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

}  // namespace

struct Metrics::Impl {
  Sources sources;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& studies =
      prometheus::BuildCounter()
          .Name("p2x_studies_total")
          .Help("Studies that reached a final state, by outcome (verified in XNAT, or failed)")
          .Register(*registry);
  prometheus::Counter& verified = studies.Add({{"outcome", "verified"}});
  prometheus::Counter& failed = studies.Add({{"outcome", "failed"}});
  prometheus::Family<prometheus::Counter>& instances =
      prometheus::BuildCounter()
          .Name("p2x_retrieved_instances_total")
          .Help("DICOM instances retrieved into the spool, per PACS")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& bytes =
      prometheus::BuildCounter()
          .Name("p2x_retrieved_bytes_total")
          .Help("Bytes retrieved into the spool, per PACS")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& subop_failures =
      prometheus::BuildCounter()
          .Name("p2x_pacs_suboperation_failures_total")
          .Help("C-MOVE/C-GET sub-operations a PACS reported as failed")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("p2x_xnat_request_duration_seconds")
          .Help("XNAT REST requests by kind: time until the answer (or the failure)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& xnat_errors =
      prometheus::BuildCounter()
          .Name("p2x_xnat_request_errors_total")
          .Help(
              "XNAT requests answered with an HTTP error (status) or not at all (status=\"none\")")
          .Register(*registry);
  prometheus::Counter& uploaded = prometheus::BuildCounter()
                                      .Name("p2x_xnat_uploaded_bytes_total")
                                      .Help("Study bytes XNAT's import service accepted")
                                      .Register(*registry)
                                      .Add({});

  explicit Impl(Sources s) : sources(std::move(s)) {
    if (!sources.now) sources.now = system_now;
  }

  void queue_families(std::vector<MetricFamily>& out) const {
    const QueueState q = sources.queue();
    const std::int64_t now = sources.now();
    auto items = gauge_family("p2x_items", "Items (CSV rows) in the store by project and state");
    for (const auto& c : q.items) {
      add_gauge(items, static_cast<double>(c.n), {{"project", c.project}, {"state", c.state}});
    }
    out.push_back(std::move(items));
    const auto age = [now](std::int64_t since) {
      return since > 0 ? static_cast<double>(std::max<std::int64_t>(0, now - since)) : 0.0;
    };
    auto queued = gauge_family("p2x_oldest_queued_item_age_seconds",
                               "How long the item queued the longest has waited (0: none queued)");
    add_gauge(queued, age(q.oldest_queued_at));
    out.push_back(std::move(queued));
    auto busy = gauge_family("p2x_oldest_in_flight_item_age_seconds",
                             "How long the item in flight the longest has been in its step "
                             "(0: none in flight)");
    add_gauge(busy, age(q.oldest_in_flight_at));
    out.push_back(std::move(busy));
    if (q.last_verified_at > 0) {
      auto since =
          gauge_family("p2x_last_verified_age_seconds",
                       "Seconds since the last study was verified in XNAT (absent: none yet)");
      add_gauge(since, age(q.last_verified_at));
      out.push_back(std::move(since));
    }
  }

  void slot_families(std::vector<MetricFamily>& out) const {
    auto in_use = gauge_family("p2x_pacs_associations_in_use",
                               "Associations (find/move/get) open towards each PACS");
    auto free = gauge_family("p2x_pacs_associations_free",
                             "Associations each PACS still allows now (window and limit)");
    for (const auto& s : sources.associations()) {
      add_gauge(in_use, s.in_use, {{"pacs", s.pacs}});
      add_gauge(free, std::max(0, s.limit - s.in_use), {{"pacs", s.pacs}});
    }
    out.push_back(std::move(in_use));
    out.push_back(std::move(free));
  }
};

Metrics::Metrics(Sources sources) : impl_(std::make_unique<Impl>(std::move(sources))) {}
Metrics::~Metrics() = default;

void Metrics::retrieved(const std::string& pacs, std::int64_t instances, std::int64_t bytes) {
  if (instances > 0)
    impl_->instances.Add({{"pacs", pacs}}).Increment(static_cast<double>(instances));
  if (bytes > 0) impl_->bytes.Add({{"pacs", pacs}}).Increment(static_cast<double>(bytes));
}

void Metrics::suboperations_failed(const std::string& pacs, std::int64_t count) {
  auto& c = impl_->subop_failures.Add({{"pacs", pacs}});
  if (count > 0) c.Increment(static_cast<double>(count));
}

void Metrics::xnat_request(const std::string& kind, double seconds, int status) {
  impl_->latency.Add({{"kind", kind}}, kLatencyBuckets).Observe(seconds);
  if (status == 0 || status >= 400) {
    impl_->xnat_errors.Add({{"status", status == 0 ? "none" : std::to_string(status)}}).Increment();
  }
}

void Metrics::uploaded(std::int64_t bytes) {
  if (bytes > 0) impl_->uploaded.Increment(static_cast<double>(bytes));
}

void Metrics::study_finished(bool verified) {
  (verified ? impl_->verified : impl_->failed).Increment();
}

std::string Metrics::render() const {
  std::vector<MetricFamily> families = impl_->registry->Collect();
  if (impl_->sources.queue) impl_->queue_families(families);
  if (impl_->sources.associations) impl_->slot_families(families);
  if (impl_->sources.spool_free_bytes) {
    if (const auto free = impl_->sources.spool_free_bytes()) {
      auto f = gauge_family("p2x_spool_free_bytes", "Free bytes on the spool's file system");
      add_gauge(f, static_cast<double>(*free));
      families.push_back(std::move(f));
    }
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace p2x::metrics
