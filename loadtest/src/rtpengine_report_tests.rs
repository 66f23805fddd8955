use super::*;

fn run(repeat: u32, server: Server, us: f64, lost: u64) -> RunFigures {
    RunFigures {
        repeat,
        server,
        loadavg_before: "1.00 1.00 1.00".into(),
        loadavg_after: "1.00 1.00 1.00".into(),
        cpu_us_per_packet: us,
        cpu_percent_of_core: us * 10.0,
        packets_per_sec: 100_000.0,
        sent: 1000,
        lost,
        loss_ratio: lost as f64 / 1000.0,
        p50_us: 80.0,
        p99_us: 300.0,
        rss_per_stream_kib: 12.0,
        setup_ms: 500.0,
        failures: Vec::new(),
    }
}

fn config(repeats: u32) -> VersusConfig {
    VersusConfig {
        streams: 1000,
        pps: 50,
        seconds: 20,
        warmup_secs: 2,
        payload: 160,
        repeats,
        ..VersusConfig::default()
    }
}

#[test]
fn spread_of_odd_even_and_empty() {
    assert_eq!(Spread::of(&[3.0, 1.0, 2.0]).median, 2.0);
    let s = Spread::of(&[4.0, 1.0]);
    assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 2));
    assert_eq!(Spread::of(&[]), Spread::default());
    assert_eq!(Spread::of(&[f64::NAN, 1.0]).n, 1);
}

#[test]
fn ratio_is_taken_within_each_repeat() {
    let runs = vec![
        run(1, Server::Wavegate, 2.0, 0),
        run(1, Server::Rtpengine, 8.0, 0),
        run(2, Server::Rtpengine, 9.0, 0),
        run(2, Server::Wavegate, 3.0, 0),
    ];
    let r = VersusReport::new(
        "t".into(),
        Mode::Plain,
        0,
        Machine::default(),
        config(2),
        runs,
        0.0,
    );
    assert_eq!((r.ratio.min, r.ratio.max, r.ratio.median), (3.0, 4.0, 3.5));
    assert_eq!(r.wavegate_cpu_us.median, 2.5);
    assert_eq!(r.rtpengine_cpu_us.median, 8.5);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let md = r.markdown();
    assert!(md.contains("**3.50x**") && md.contains("met"), "{md}");
    assert_eq!(r.issue_rtpengine_us, ISSUE_RTPENGINE_PLAIN_US);
    let svg = r.svg().unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("rtpengine"),
        "{svg}"
    );
}

#[test]
fn failed_runs_fail_the_report() {
    let mut bad = run(1, Server::Rtpengine, 8.0, 0);
    bad.failures.push("loss 0.1 > allowed 0".into());
    let runs = vec![
        run(1, Server::Wavegate, 2.0, 0),
        bad,
        RunFigures::broken(2, Server::Wavegate, "no binary".into()),
        run(2, Server::Rtpengine, 8.0, 0),
    ];
    let r = VersusReport::new(
        "t".into(),
        Mode::Webrtc,
        0,
        Machine::default(),
        config(2),
        runs,
        0.0,
    );
    // Repeat 1 measured both (the lossy run keeps its CPU figure); repeat 2 could not run ours.
    assert_eq!((r.ratio.n, r.ratio.median), (1, 4.0));
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert!(r.markdown().contains("- FAILED: run 1 rtpengine: loss"));
    assert_eq!(r.issue_rtpengine_us, ISSUE_RTPENGINE_SRTP_US);
}

#[test]
fn below_target_is_reported_as_not_met() {
    let runs = vec![
        run(1, Server::Wavegate, 4.0, 0),
        run(1, Server::Rtpengine, 8.0, 0),
    ];
    let r = VersusReport::new(
        "t".into(),
        Mode::Plain,
        0,
        Machine::default(),
        config(1),
        runs,
        0.0,
    );
    assert_eq!(r.ratio.median, 2.0);
    assert!(r.markdown().contains("**not met**"));
    assert!(r.failures.is_empty());
}
