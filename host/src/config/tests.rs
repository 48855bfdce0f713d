use super::*;

fn parse(text: &str) -> Result<PipelineConfig, ConfigErrors> {
    PipelineConfig::parse(Path::new("/etc/wasmeter/test.toml"), text)
}

#[test]
fn a_valid_pipeline() {
    let c = parse(
        r#"
[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "10s"
settings = { resource_id = "web-1", depth = 3 }
limits = { memory = "64MiB", call_timeout = "2s" }

[[transformer]]
name = "b"
plugin = "builtin:unit-conversion"
inputs = ["a"]

[[transformer]]
name = "a"
plugin = "plugins/x.wasm"
inputs = ["host"]
meters = ["memory.*"]
settings = { scale = 0.5 }
"#,
    )
    .unwrap();
    assert_eq!(c.collectors[0].interval, Duration::from_secs(10));
    assert_eq!(c.collectors[0].limits.memory_bytes, 64 << 20);
    assert_eq!(
        c.collectors[0].settings,
        vec![
            ("depth".to_string(), "3".to_string()),
            ("resource_id".to_string(), "web-1".to_string())
        ]
    );
    // Topological order: a before b.
    let names: Vec<&str> = c.transformers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        c.transformers[0].plugin,
        PluginSource::File("/etc/wasmeter/plugins/x.wasm".into())
    );
    assert_eq!(
        c.transformers[0].settings,
        vec![("scale".to_string(), "0.5".to_string())]
    );
}

#[test]
fn every_error_at_once_with_line_and_field() {
    let errs = parse(
        r#"[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "ten seconds"

[[transformer]]
name = "host"
plugin = "builtin:unit-conversion"
inputs = ["nowhere"]
meters = ["cpu", "!disk"]
"#,
    )
    .unwrap_err();
    let lines: Vec<String> = errs
        .0
        .iter()
        .map(|e| format!("{:?}:{} {}", e.line, e.field, e.message))
        .collect();
    assert_eq!(errs.0.len(), 4, "{lines:#?}");
    assert_eq!(errs.0[0].line, Some(4));
    assert_eq!(errs.0[0].field, "collector[0].interval");
    assert!(
        errs.0[0]
            .message
            .starts_with("bad duration \"ten seconds\""),
        "{}",
        errs.0[0].message
    );
    assert_eq!(errs.0[1].line, Some(7));
    assert_eq!(errs.0[1].field, "transformer[0].name");
    assert_eq!(
        errs.0[1].message,
        "duplicate stage name \"host\" (first used on line 2)"
    );
    assert_eq!(errs.0[2].line, Some(9));
    assert_eq!(errs.0[2].column, Some(11));
    assert_eq!(errs.0[2].field, "transformer[0].inputs[0]");
    assert_eq!(
        errs.0[2].message,
        "unknown stage \"nowhere\" (stages: host)"
    );
    assert_eq!(errs.0[3].line, Some(10));
    assert_eq!(errs.0[3].field, "transformer[0].meters");
    assert_eq!(
        errs.to_string().lines().next().unwrap(),
        "error: /etc/wasmeter/test.toml:4:12: collector[0].interval: bad duration \"ten seconds\": expected number at 0 (expected e.g. 10s, 5m, 30d)"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let errs = parse("[[collector]]\nname = \"a\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\nintervall = \"2s\"\n").unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].line, Some(5));
    assert!(
        errs.0[0].message.contains("unknown field `intervall`"),
        "{}",
        errs.0[0].message
    );
}

#[test]
fn cycles_are_named() {
    let errs = parse(
        r#"
[[collector]]
name = "c"
plugin = "builtin:procfs"
interval = "1s"

[[transformer]]
name = "x"
plugin = "builtin:unit-conversion"
inputs = ["c", "z"]

[[transformer]]
name = "y"
plugin = "builtin:unit-conversion"
inputs = ["x"]

[[transformer]]
name = "z"
plugin = "builtin:unit-conversion"
inputs = ["y"]
"#,
    )
    .unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].message, "stages form a cycle: x -> y -> z -> x");
    assert_eq!(errs.0[0].line, Some(10));
}

#[test]
fn unknown_keys_in_several_stages_are_all_reported() {
    let errs = parse(
        "[[collector]]\nname = \"a\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\nintervall = \"2s\"\n\n[[collector]]\nname = \"b\"\nplugin = \"builtin:procfs\"\ninterval = \"x\"\nlimits = { memroy = \"1MiB\" }\n\n[alarms]\n",
    )
    .unwrap_err();
    let got: Vec<(Option<usize>, &str)> =
        errs.0.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(5), "collector[0]"),
            (Some(11), "collector[1]"),
            (Some(13), "alarms")
        ],
        "{errs}"
    );
    assert!(
        errs.0[1].message.contains("unknown field `memroy`"),
        "{}",
        errs.0[1].message
    );
    assert_eq!(
        errs.0[2].message,
        "unknown section `alarms` (expected one of archive, telemetry, archive_policy, archive_policy_rule, collector, transformer, alarm, notifier)"
    );
}

#[test]
fn http_hosts_are_bare_authorities() {
    let c = parse(
        r#"
[[collector]]
name = "enrich"
plugin = "x.wasm"
interval = "10s"
grants = { http_hosts = ["api.example.com", "127.0.0.1:8080", "[::1]:9000"] }
"#,
    )
    .unwrap();
    assert_eq!(
        c.collectors[0].grants.http_hosts,
        ["api.example.com", "127.0.0.1:8080", "[::1]:9000"]
    );
    let e = parse(
        r#"
[[collector]]
name = "enrich"
plugin = "x.wasm"
interval = "10s"
grants = { http_hosts = ["https://api.example.com/v1", "*.example.com", "host:http"] }
"#,
    )
    .unwrap_err();
    let fields: Vec<&str> = e.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "collector[0].grants.http_hosts[0]",
            "collector[0].grants.http_hosts[1]",
            "collector[0].grants.http_hosts[2]"
        ]
    );
    assert!(e.0[0].message.contains("expected a host or host:port"));
}

#[test]
fn precision_bits_is_read_and_checked_with_its_field() {
    let policy = |bits: &str| {
        format!(
            "[[archive_policy]]\nname = \"lossy\"\ndefinition = [{{ granularity = \"5m\", points = 12 }}]\nprecision_bits = {bits}\n"
        )
    };
    let c = parse(&policy("16")).unwrap();
    let p = c.policies.iter().find(|p| p.name == "lossy").unwrap();
    assert_eq!(p.precision_bits, Some(16));
    let errs = parse(&policy("0")).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    // Policy errors point at the policy's table, and name the field.
    assert_eq!(errs.0[0].line, Some(1));
    assert_eq!(errs.0[0].field, "archive_policy[0].precision_bits");
    assert_eq!(
        errs.0[0].message,
        "must be 1 to 52 (bits kept of a value's 52-bit binary fraction; 52 or no precision_bits keeps values exact), got 0"
    );
}

#[test]
fn archive_max_future_checkpoint_interval_and_wal_are_read_and_checked() {
    let stage = "[[collector]]\nname = \"c\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\n";
    assert_eq!(
        parse(stage).unwrap().archive.max_future,
        Duration::from_secs(3600)
    );
    assert_eq!(
        parse(stage).unwrap().archive.checkpoint_interval,
        Duration::from_secs(300)
    );
    let c = parse(&format!(
        "{stage}[archive]\nmax_future = \"10m\"\ncheckpoint_interval = \"30s\"\n"
    ))
    .unwrap();
    assert_eq!(c.archive.max_future, Duration::from_secs(600));
    assert_eq!(c.archive.checkpoint_interval, Duration::from_secs(30));
    assert!(c.archive.wal, "the write-ahead log is on by default");
    let c = parse(&format!("{stage}[archive]\nwal = false\n")).unwrap();
    assert!(!c.archive.wal);
    let errs = parse(&format!("{stage}[archive]\nwal = \"no\"\n")).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].line, Some(6));
    assert_eq!(
        (errs.0[0].field.as_str(), errs.0[0].message.as_str()),
        ("archive", "invalid type: string \"no\", expected a boolean")
    );
    for (value, message) in [
        ("0s", "must be greater than zero"),
        ("soon", "bad duration \"soon\""),
    ] {
        let errs = parse(&format!("{stage}[archive]\nmax_future = \"{value}\"\n")).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{value}");
        assert_eq!(errs.0[0].line, Some(6));
        assert_eq!(errs.0[0].field, "archive.max_future");
        assert!(
            errs.0[0].message.starts_with(message),
            "{}",
            errs.0[0].message
        );
    }
}

#[test]
fn wal_fsync_delay_defaults_to_a_second_and_may_be_zero() {
    let stage = "[[collector]]\nname = \"c\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\n";
    let delay = |extra: &str| parse(&format!("{stage}{extra}")).map(|c| c.archive.wal_fsync_delay);
    assert_eq!(delay("").unwrap(), Duration::from_secs(1));
    assert_eq!(
        delay("[archive]\nwal_fsync_delay = \"0s\"\n").unwrap(),
        Duration::ZERO
    );
    assert_eq!(
        delay("[archive]\nwal_fsync_delay = \"250ms\"\n").unwrap(),
        Duration::from_millis(250)
    );
    let errs = delay("[archive]\nwal_fsync_delay = \"often\"\n").unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].line, Some(6));
    assert_eq!(errs.0[0].field, "archive.wal_fsync_delay");
    assert!(
        errs.0[0].message.starts_with("bad duration \"often\""),
        "{}",
        errs.0[0].message
    );
}

/// A scraping collector with `extra` lines after its `url`.
fn scrape_with(url: &str, extra: &str) -> String {
    format!(
        "[[collector]]\nname = \"node\"\nplugin = \"builtin:openmetrics\"\ninterval = \"15s\"\nurl = \"{url}\"\n{extra}"
    )
}

#[test]
fn scrape_credentials_and_tls_are_read_with_paths_beside_the_config() {
    let c = parse(&scrape_with(
        "https://node:9100/metrics",
        "authorization = { credentials_file = \"secrets/node.token\" }\n\
         tls_config = { ca_file = \"ca.pem\", cert_file = \"/pki/me.pem\", key_file = \"me.key\", min_version = \"TLS13\" }\n",
    ))
    .unwrap();
    let t = c.collectors[0].scrape.as_ref().unwrap();
    assert_eq!(
        t.auth,
        Some(ScrapeAuth::Authorization {
            scheme: "Bearer".into(),
            credentials: Secret::File("/etc/wasmeter/secrets/node.token".into()),
        })
    );
    assert_eq!(
        t.tls,
        TlsConfig {
            ca_file: Some("/etc/wasmeter/ca.pem".into()),
            cert_file: Some("/pki/me.pem".into()),
            key_file: Some("/etc/wasmeter/me.key".into()),
            insecure_skip_verify: false,
            min_version: TlsVersion::Tls13,
        }
    );
    let c = parse(&scrape_with(
        "http://node:9100/metrics",
        "basic_auth = { username = \"prom\", password = \"s3cret\" }\n",
    ))
    .unwrap();
    let auth = c.collectors[0].scrape.as_ref().unwrap().auth.clone();
    assert_eq!(
        auth,
        Some(ScrapeAuth::Basic {
            username: Secret::Inline("prom".into()),
            password: Secret::Inline("s3cret".into()),
        })
    );
    // The password never shows in a debug print of the config.
    assert!(!format!("{c:?}").contains("s3cret"));
    let c = parse(&scrape_with(
        "http://node:9100/metrics",
        "basic_auth = { username_file = \"u\", password_file = \"/run/p\" }\n",
    ))
    .unwrap();
    let auth = c.collectors[0].scrape.as_ref().unwrap().auth.clone();
    assert_eq!(
        auth,
        Some(ScrapeAuth::Basic {
            username: Secret::File("/etc/wasmeter/u".into()),
            password: Secret::File("/run/p".into()),
        })
    );
    let c = parse(&scrape_with(
        "http://node:9100/metrics",
        "authorization = { type = \"Token\", credentials = \"t\" }\n",
    ))
    .unwrap();
    let auth = c.collectors[0].scrape.as_ref().unwrap().auth.clone();
    assert!(matches!(auth, Some(ScrapeAuth::Authorization { scheme, .. }) if scheme == "Token"));
}

#[test]
fn scrape_redirects_and_proxy_are_read_as_prometheus_has_them() {
    let url = "http://node:9100/metrics";
    let c = parse(&scrape_with(url, "")).unwrap();
    let t = c.collectors[0].scrape.as_ref().unwrap();
    assert!(t.follow_redirects);
    assert_eq!(t.proxy, ScrapeProxy::Direct);
    let c = parse(&scrape_with(
        url,
        "follow_redirects = false\nproxy_url = \"http://prom:pa55@proxy:3128\"\n\
         no_proxy = \" 10.0.0.0/8, *.internal,::1,[fe80::1],fe80::/10,localhost \"\n",
    ))
    .unwrap();
    let t = c.collectors[0].scrape.as_ref().unwrap();
    assert!(!t.follow_redirects);
    assert_eq!(
        t.proxy,
        ScrapeProxy::Url {
            url: "http://prom:pa55@proxy:3128".parse().unwrap(),
            no_proxy: "10.0.0.0/8,.internal,::1,fe80::1,fe80::/10,localhost".into(),
        }
    );
    let debug = format!("{c:?}");
    assert!(debug.contains("http://***@proxy:3128/") && !debug.contains("pa55"));
    let c = parse(&scrape_with(url, "proxy_from_environment = true\n")).unwrap();
    let t = c.collectors[0].scrape.as_ref().unwrap();
    assert_eq!(t.proxy, ScrapeProxy::FromEnvironment);
    let c = parse(&scrape_with(url, "proxy_from_environment = false\n")).unwrap();
    let t = c.collectors[0].scrape.as_ref().unwrap();
    assert_eq!(t.proxy, ScrapeProxy::Direct);

    let cases = [
        (
            "proxy_url = \"http://p:3128\"\nproxy_from_environment = true\n",
            7,
            "collector[0].proxy_from_environment",
            "give `proxy_url` or `proxy_from_environment`, not both",
        ),
        (
            "no_proxy = \"localhost\"\n",
            6,
            "collector[0].no_proxy",
            "needs `proxy_url`",
        ),
        (
            "proxy_from_environment = true\nno_proxy = \"localhost\"\n",
            7,
            "collector[0].no_proxy",
            "the environment's NO_PROXY applies with `proxy_from_environment`: \
             give `no_proxy` with `proxy_url` only",
        ),
        (
            "proxy_url = \"socks5://u:secret@p:1080\"\n",
            6,
            "collector[0].proxy_url",
            "\"socks5://***@p:1080\": expected an http:// or https:// proxy URL with a host \
             (scheme \"socks5\"; SOCKS proxies are not supported)",
        ),
        (
            "proxy_url = \"p:3128\"\n",
            6,
            "collector[0].proxy_url",
            "\"p:3128\": expected an http:// or https:// proxy URL with a host \
             (scheme \"p\"; SOCKS proxies are not supported)",
        ),
        (
            "proxy_url = \"http://p:3128\"\nno_proxy = \"localhost, node:9100\"\n",
            7,
            "collector[0].no_proxy",
            "\"node:9100\": a port is not matched, give the host, domain or network alone",
        ),
        (
            "proxy_url = \"http://p:3128\"\nno_proxy = \"[::1]:9100\"\n",
            7,
            "collector[0].no_proxy",
            "\"[::1]:9100\": a port is not matched, give the host, domain or network alone",
        ),
        (
            "proxy_url = \"http://p:3128\"\nno_proxy = \"10.0.0.0/33\"\n",
            7,
            "collector[0].no_proxy",
            "\"10.0.0.0/33\": a network is an IP address and a prefix length, e.g. 10.0.0.0/8",
        ),
        (
            "proxy_url = \"http://p:3128\"\nno_proxy = \"example.com/24\"\n",
            7,
            "collector[0].no_proxy",
            "\"example.com/24\": a network is an IP address and a prefix length, e.g. 10.0.0.0/8",
        ),
        (
            "proxy_url = \"prom:pa55@proxy:3128\"\n",
            6,
            "collector[0].proxy_url",
            "\"***@proxy:3128\": expected an http:// or https:// proxy URL with a host \
             (scheme \"prom\"; SOCKS proxies are not supported)",
        ),
        (
            "proxy_url = \"no url\"\n",
            6,
            "collector[0].proxy_url",
            "\"no url\" is not a URL: relative URL without a base",
        ),
        (
            "follow_redirects = \"no\"\n",
            6,
            "collector[0]",
            "invalid type: string \"no\", expected a boolean",
        ),
    ];
    for (extra, line, field, message) in cases {
        let errs = parse(&scrape_with(url, extra)).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{extra}: {errs}");
        let e = &errs.0[0];
        assert_eq!(
            (e.line, e.field.as_str(), e.message.as_str()),
            (Some(line), field, message),
            "{extra}"
        );
    }
    // Without a url, nothing is scraped.
    let errs = parse(
        "[[collector]]\nname = \"c\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\n\
         follow_redirects = false\n",
    )
    .unwrap_err();
    assert_eq!(errs.0[0].field, "collector[0].follow_redirects");
    assert_eq!(errs.0[0].message, "only a collector with a `url` scrapes");
}

#[test]
fn conflicting_or_misplaced_scrape_credentials_are_refused_with_their_line() {
    let https = "https://node:9100/metrics";
    let cases = [
        (
            https,
            "basic_auth = { username = \"a\" }\nauthorization = { credentials = \"t\" }\n",
            7,
            "collector[0].authorization",
            "give `basic_auth` or `authorization`, not both",
        ),
        (
            https,
            "basic_auth = { username = \"a\", password = \"p\", password_file = \"f\" }\n",
            6,
            "collector[0].basic_auth.password_file",
            "give `password` or `password_file`, not both",
        ),
        (
            https,
            "basic_auth = { password = \"p\" }\n",
            6,
            "collector[0].basic_auth",
            "needs `username` or `username_file`",
        ),
        (
            https,
            "authorization = { type = \"Bearer\" }\n",
            6,
            "collector[0].authorization",
            "needs `credentials` or `credentials_file`",
        ),
        (
            https,
            "authorization = { type = \"Basic\", credentials = \"x\" }\n",
            6,
            "collector[0].authorization.type",
            "use `basic_auth` for Basic authentication",
        ),
        (
            "https://u:p@node:9100/metrics",
            "authorization = { credentials = \"t\" }\n",
            6,
            "collector[0].url",
            "the url has credentials too: give them in one place",
        ),
        (
            https,
            "authorization = { credentials = \"two\\nlines\" }\n",
            6,
            "collector[0].authorization.credentials",
            "holds a character not allowed in an HTTP header (e.g. a line break)",
        ),
        (
            "http://node:9100/metrics",
            "tls_config = { ca_file = \"ca.pem\" }\n",
            6,
            "collector[0].tls_config",
            "applies to an https:// url only",
        ),
        (
            https,
            "tls_config = { min_version = \"TLS11\" }\n",
            6,
            "collector[0].tls_config.min_version",
            "\"TLS11\": TLS 1.0 and 1.1 are not spoken (rustls): TLS12 is the oldest",
        ),
        (
            https,
            "tls_config = { cert_file = \"me.pem\" }\n",
            6,
            "collector[0].tls_config.key_file",
            "a `cert_file` needs its `key_file`",
        ),
    ];
    for (url, extra, line, field, message) in cases {
        let errs = parse(&scrape_with(url, extra)).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{extra}: {errs}");
        assert_eq!(
            (
                errs.0[0].line,
                errs.0[0].field.as_str(),
                errs.0[0].message.as_str()
            ),
            (Some(line), field, message),
            "{extra}"
        );
    }
    // A URL's password stays out of messages and debug prints.
    let errs = parse(&scrape_with("htps://prom:pa55@node:9100/metrics", "")).unwrap_err();
    assert_eq!(
        errs.0[0].message,
        "\"htps://***@node:9100/metrics\": expected an http:// or https:// URL with a host (scheme \"htps\")"
    );
    let c = parse(&scrape_with("http://prom:pa55@node:9100/metrics", "")).unwrap();
    let debug = format!("{c:?}");
    assert!(debug.contains("http://prom:***@node:9100/metrics") && !debug.contains("pa55"));
    // Without a url, nothing is scraped.
    let errs = parse(
        "[[collector]]\nname = \"c\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\n\
         basic_auth = { username = \"a\" }\n",
    )
    .unwrap_err();
    assert_eq!(errs.0[0].field, "collector[0].basic_auth");
    assert_eq!(errs.0[0].message, "only a collector with a `url` scrapes");
}
