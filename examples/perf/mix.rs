//! The traffic the soak and the benchmark send: a weighted mix of requests an edge proxy in front of a shop and
//! its API sees, each with the status `rules/edge.yaml` gives it. Before any load runs, every request is run on
//! the simulated proxy: its status must be the one written here, and what the simulator counts becomes what the
//! module's counters must add up to after the run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rulefilter::local::echo::Answer;
use rulefilter::metrics::CounterId;
use rulefilter::simulate::{self, Request, Response};
use rulefilter::RuleSet;

/// One kind of request, sent `weight` times per cycle of the mix.
pub struct Entry {
    pub weight: u32,
    pub method: &'static str,
    /// Path with query.
    pub path: &'static str,
    pub host: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    /// What `rules/edge.yaml` answers, with the echo upstream answering 200.
    pub status: u16,
}

const BROWSER: (&str, &str) = ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
const APP: (&str, &str) = ("user-agent", "ShopApp/5.2.0 (iOS 18.1)");
const TOKEN: (&str, &str) = ("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl");
const ORIGIN: (&str, &str) = ("origin", "https://app.example.com");
const OFFICE: (&str, &str) = ("x-forwarded-for", "203.0.113.9");

const fn entry(
    weight: u32,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
) -> Entry {
    Entry { weight, method, path, host: "example.com", headers, status }
}

/// A signed-in call from the app that passes every check: also what the benchmark's latency legs send.
pub const API_CALL: Entry = entry(5, "GET", "/api/v3/orders", &[APP, TOKEN, ("cookie", "tenant=acme-eu"), ORIGIN], 200);

/// Two in three requests reach the service; the proxy answers the rest: preflights, redirects, refusals,
/// maintenance and robots.txt. Dry-run and `log` rules match now and then, as in production, and now and then
/// the service fails (the echo upstream answers as `x-echo-status` and `x-echo-header` ask). Every rule matches
/// some request.
pub const EDGE_MIX: &[Entry] = &[
    // Browsing the shop.
    entry(8, "GET", "/shop/shoes?page=2", &[BROWSER, ("cookie", "session=s-7f3a; theme=dark")], 200),
    entry(6, "GET", "/static/app.3f9a.css", &[BROWSER], 200),
    entry(2, "GET", "/shop?utm_source=news&utm_campaign=fall&id=7", &[BROWSER], 200),
    entry(2, "GET", "/shop/cart", &[BROWSER, ("cookie", "session=s-7f3a; canary=always")], 200),
    entry(1, "GET", "/shop?canary=on", &[BROWSER], 200),
    entry(2, "GET", "/healthz", &[("user-agent", "kube-probe/1.31")], 200),
    entry(1, "GET", "/robots.txt", &[("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1)")], 200),
    entry(1, "GET", "/wp-login.php", &[("user-agent", "Mozilla/5.0")], 200),
    // The API.
    entry(6, "GET", "/api/v3/catalog/items/7", &[APP, ORIGIN], 200),
    entry(4, "GET", "/api/v2/search?q=shoes&fbclid=x1", &[APP], 200),
    API_CALL,
    entry(
        2,
        "POST",
        "/api/v3/orders",
        &[APP, TOKEN, ("cookie", "tenant=acme-eu"), ("content-type", "application/json")],
        200,
    ),
    entry(1, "DELETE", "/api/v3/orders/7", &[APP, TOKEN], 200),
    entry(1, "GET", "/api/v3/partners/feed", &[TOKEN, ("x-api-key", "pk_live_0123456789abcdefABCDEFGH")], 200),
    entry(1, "GET", "/admin/users", &[BROWSER, OFFICE, ("cookie", "sso_session=a1b2")], 200),
    entry(1, "GET", "/api/v3/search?q=boots&limit=500", &[APP], 200),
    Entry { host: "acme.api.example.com", ..entry(1, "GET", "/api/v3/orders", &[TOKEN], 200) },
    entry(1, "GET", "/shop?canary=off", &[BROWSER, ("cookie", "canary=always")], 200),
    // Answered by the proxy.
    entry(2, "OPTIONS", "/api/v3/orders", &[ORIGIN, ("access-control-request-method", "POST")], 204),
    entry(2, "GET", "/api/v3/orders", &[APP], 401),
    Entry { host: "shop.example.com", ..entry(1, "GET", "/cart?id=3", &[BROWSER], 308) },
    Entry { host: "www.example.com", ..entry(1, "GET", "/about", &[BROWSER], 301) },
    entry(1, "GET", "/blog/2019/hello-world.html", &[BROWSER], 301),
    entry(1, "GET", "/admin/users", &[BROWSER, OFFICE], 302),
    entry(1, "GET", "/help/returns", &[BROWSER], 301),
    entry(1, "GET", "/admin/", &[BROWSER, ("x-forwarded-for", "192.168.7.7"), ("cookie", "sso_session=a1b2")], 403),
    entry(
        1,
        "OPTIONS",
        "/api/v3/orders",
        &[("origin", "https://evil.example.org"), ("access-control-request-method", "POST")],
        403,
    ),
    entry(1, "GET", "/api/v3/partners/feed", &[TOKEN, ("x-api-key", "pk_test_short")], 403),
    entry(1, "POST", "/api/v3/payments", &[APP, TOKEN, ("content-type", "application/json")], 503),
    entry(1, "GET", "/", &[("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")], 403),
    entry(1, "GET", "/shop", &[BROWSER, ("x-forwarded-for", "198.51.100.7")], 403),
    entry(1, "GET", "/checkout/pay", &[BROWSER], 503),
    entry(1, "GET", "/api/v1/orders", &[APP, TOKEN], 410),
    entry(1, "GET", "/api/v9/orders", &[APP, TOKEN], 404),
    entry(1, "PUT", "/api/v3/orders/7", &[APP, TOKEN, ("content-type", "text/plain")], 415),
    entry(1, "GET", "/api/v3/catalog", &[("user-agent", "ShopApp/3.1.4 (Android 14)")], 426),
    entry(1, "GET", "/shop/search?q=x", &[("user-agent", "Mozilla/5.0 (compatible; bingbot/2.0)")], 429),
    // The service fails: errors are not cached, overload gets a retry-after, an API's HTML error page becomes
    // JSON, 5xx are logged. A static asset that sets a cookie meets the dry-run rule against it.
    entry(1, "GET", "/api/v3/orders", &[APP, TOKEN, ("cookie", "tenant=acme-eu"), ("x-echo-status", "503")], 503),
    entry(1, "GET", "/shop/cart", &[BROWSER, ("x-echo-status", "429")], 429),
    entry(
        1,
        "GET",
        "/api/v3/orders",
        &[
            APP,
            TOKEN,
            ("cookie", "tenant=acme-eu"),
            ("x-echo-status", "500"),
            ("x-echo-header", "content-type: text/html"),
        ],
        502,
    ),
    entry(1, "GET", "/static/logo.svg", &[BROWSER, ("x-echo-header", "set-cookie: seen=1")], 200),
];

/// What the echo upstream answers `request` in the simulation: the status and headers it asks for (see
/// [`Answer`]), without the JSON body.
pub fn echo_response(request: &Request) -> Response {
    let answer = Answer::asked_for(&request.headers);
    Response { status: answer.status, headers: answer.headers("echo"), body: String::new() }
}

impl Entry {
    pub fn request(&self) -> Request {
        let mut request = Request::get(self.path).method(self.method).authority(self.host);
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        // wrk sends a length with every write, even an empty one; so do we, so both sides see the same request.
        if matches!(self.method, "POST" | "PUT" | "PATCH") {
            request = request.header("content-length", "0");
        }
        request
    }
}

/// A mix checked against a rule set: the order requests go out in, and what one cycle of it should produce.
pub struct Plan {
    /// Indices into the mix, one per request of a cycle, heavier entries spread out rather than bunched.
    pub order: Vec<usize>,
    /// Statuses over one cycle.
    pub statuses: BTreeMap<u16, u64>,
    /// Module counters over one cycle, by counter id.
    pub counters: BTreeMap<CounterId, u64>,
    /// The most one request adds to each counter (for the in-flight margin).
    pub counter_max: BTreeMap<CounterId, u64>,
    /// For each entry of the mix: the proxy answers it, the service is not called.
    pub answered_by_proxy: Vec<bool>,
}

impl Plan {
    /// Checks each entry on the simulated proxy; `Err` lists the entries whose status differs from the rules'.
    pub fn new(mix: &[Entry], rules: &RuleSet) -> Result<Plan, String> {
        let mut statuses = BTreeMap::new();
        let mut counters = BTreeMap::new();
        let mut counter_max: BTreeMap<CounterId, u64> = BTreeMap::new();
        let mut wrong = String::new();
        let mut answered_by_proxy = Vec::new();
        for entry in mix {
            let request = entry.request();
            let outcome = simulate::run(rules, &request, &echo_response(&request));
            if outcome.response.status != entry.status || !outcome.host_errors.is_empty() {
                let _ = writeln!(
                    wrong,
                    "  {} {} (host {}): the mix says {}, the rules answer {} {:?}",
                    entry.method, entry.path, entry.host, entry.status, outcome.response.status, outcome.host_errors
                );
            }
            *statuses.entry(entry.status).or_insert(0) += u64::from(entry.weight);
            answered_by_proxy.push(outcome.responded_locally);
            let mut once: BTreeMap<CounterId, u64> = BTreeMap::new();
            for counter in outcome.counted {
                *once.entry(counter).or_insert(0) += 1;
            }
            for (counter, count) in once {
                *counters.entry(counter).or_insert(0) += count * u64::from(entry.weight);
                let max = counter_max.entry(counter).or_insert(0);
                *max = (*max).max(count);
            }
        }
        if !wrong.is_empty() {
            return Err(format!("the mix disagrees with the rules:\n{wrong}"));
        }
        Ok(Plan { order: spread(mix), statuses, counters, counter_max, answered_by_proxy })
    }

    /// Requests per cycle.
    pub fn cycle(&self) -> u64 {
        self.order.len() as u64
    }

    /// The statuses the mix should produce.
    pub fn expected_statuses(&self) -> BTreeSet<u16> {
        self.statuses.keys().copied().collect()
    }
}

/// Smooth weighted round robin: each entry appears `weight` times per cycle, as evenly spaced as can be.
fn spread(mix: &[Entry]) -> Vec<usize> {
    let total: i64 = mix.iter().map(|e| i64::from(e.weight)).sum();
    let mut current = vec![0_i64; mix.len()];
    let mut order = Vec::new();
    for _ in 0..total {
        for (credit, entry) in current.iter_mut().zip(mix) {
            *credit += i64::from(entry.weight);
        }
        let best = current.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i))).map(|(i, _)| i);
        if let Some(best) = best {
            order.push(best);
            if let Some(credit) = current.get_mut(best) {
                *credit -= total;
            }
        }
    }
    order
}

/// The mix as wrk's script reads it: one request a line, in sending order; tab-separated method, path, then
/// `name: value` headers (`Host` spelt as wrk wants it to replace its own).
pub fn wrk_lines(mix: &[Entry], order: &[usize]) -> String {
    let mut text = String::new();
    for entry in order.iter().filter_map(|&i| mix.get(i)) {
        let _ = write!(text, "{}\t{}\tHost: {}", entry.method, entry.path, entry.host);
        for (name, value) in entry.headers {
            let _ = write!(text, "\t{name}: {value}");
        }
        text.push('\n');
    }
    text
}
