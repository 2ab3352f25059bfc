//! `qis-edge sim --plants N`: a fleet of N real gateway instances in this process (one task
//! set and two MQTT connections each: the local broker and the fleet broker), with contexts
//! drawn so that each confirmation must reach a known subset of the fleet by each match
//! level ([`shape`]). Sources confirm one failure each, in turn; the run measures, at every
//! plant that must hear it, the time from the confirmation to the packet applied, checks that
//! no other plant applied it, counts the bytes sources and a sample of receivers exchange with
//! the fleet broker (through a counting proxy, [`wire`]), the broker's and this process's CPU
//! and memory per instance; then a gateway that joins afterwards with an empty state must hold
//! every live packet.

pub mod report;
pub mod shape;
pub mod watch;
pub mod wire;

use shape::Shape;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use watch::Watch;

/// What `qis-edge sim --plants` was asked.
#[derive(Debug, Clone)]
pub struct ScaleArgs {
    pub plants: usize,
    /// Sources, each confirming one failure.
    pub confirmations: usize,
    /// The local broker, `host:port`; default an embedded one.
    pub broker: Option<String>,
    /// The fleet broker's nodes, `host:port` each, tried in turn; default the local broker.
    pub uplink: Vec<String>,
    /// Processes whose CPU is the broker's (e.g. every node of a cluster).
    pub broker_pids: Vec<String>,
    /// Every plant's `[outcomes] join_requests` (for a fleet broker without retained
    /// messages on wildcard subscriptions).
    pub join_requests: bool,
    pub out: Option<PathBuf>,
}

/// The most plants a run takes: each holds about five file descriptors.
pub const MAX_PLANTS: usize = 2000;
/// Receivers whose fleet link is counted, beside every source's.
const SAMPLED: usize = 16;
/// How long a confirmation may take to reach every plant that must hear it.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);

/// One running gateway.
struct Gateway {
    site: String,
    shape: Shape,
    key: String,
    bytes: Option<Arc<wire::Bytes>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// What a run needs to start a plant.
struct Fleet {
    root: PathBuf,
    mqtt: (String, u16),
    uplink: Vec<(String, u16)>,
    plc: u16,
    run: String,
    join_requests: bool,
    cancel: CancellationToken,
}

/// Runs the scale simulation; returns the report in Markdown.
pub async fn run(args: ScaleArgs) -> Result<String, String> {
    let k = args.confirmations;
    if k == 0 || args.plants <= k || args.plants > MAX_PLANTS {
        return Err(format!(
            "--plants {} --confirmations {k}: give at least one confirmation, more plants than \
             confirmations, and at most {MAX_PLANTS} plants",
            args.plants
        ));
    }
    raise_file_limit(args.plants);
    let (host, port) = super::broker(args.broker.as_deref(), args.plants * 2 + 16)?;
    let uplink = if args.uplink.is_empty() {
        vec![(host.clone(), port)]
    } else {
        args.uplink
            .iter()
            .map(|u| super::host_port(u, "--uplink"))
            .collect::<Result<_, _>>()?
    };
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let plc = wire::Plc::new(args.plants + 1, 50);
    let plc_addr = crate::demo::plant::serve_on_free_port(plc.clone(), cancel.clone())
        .await
        .map_err(|e| format!("the simulated PLC: {e}"))?;
    let root = match &args.out {
        Some(out) => out.join("state"),
        None => std::env::temp_dir().join(format!("qis-edge-scale-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&root);
    let fleet = Fleet {
        root,
        mqtt: (host.clone(), port),
        uplink,
        plc: plc_addr.port(),
        run: format!("run {}", std::process::id()),
        join_requests: args.join_requests,
        cancel: cancel.clone(),
    };
    let mut w = Watch::connect(&host, port).await?;
    let result = measure(&args, &fleet, &plc, &mut w).await;
    if args.out.is_none() {
        let _ = std::fs::remove_dir_all(&fleet.root);
    }
    let figures = result?;
    let markdown = report::markdown(&figures);
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&figures).unwrap_or_default();
        std::fs::write(out.join("scale.json"), json)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        std::fs::write(out.join("scale.md"), &markdown)
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(markdown)
}

/// Starts the fleet, confirms in turn, lets a plant join, stops them all.
async fn measure(
    args: &ScaleArgs,
    fleet: &Fleet,
    plc: &wire::Plc,
    w: &mut Watch,
) -> Result<report::Figures, String> {
    let k = args.confirmations;
    let shapes = shape::fleet(args.plants, k);
    let rss_before = wire::rss_kib();
    let started = Instant::now();
    let mut gateways = Vec::with_capacity(args.plants + 1);
    for (i, s) in shapes.iter().enumerate() {
        let counted = s.source || (i >= k && i < k + SAMPLED);
        gateways.push(start(fleet, i, *s, counted).await?);
    }
    let limit =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(50) * args.plants as u32;
    let sites: Vec<String> = gateways.iter().map(|g| g.site.clone()).collect();
    loop {
        let check = limit.min(Instant::now() + Duration::from_secs(5));
        if w.until(check, |w| sites.iter().all(|s| w.subscribed.contains(s)))
            .await
        {
            break;
        }
        if Instant::now() >= limit {
            let missing = sites.iter().filter(|s| !w.subscribed.contains(*s)).count();
            return Err(format!(
                "{missing} of {} plants never subscribed to the fleet broker",
                sites.len()
            ));
        }
        w.refresh_uplinks().await;
    }
    let start_s = started.elapsed().as_secs_f64();
    let rss_after = wire::rss_kib();
    let mut figures = report::Figures::new(args, &shapes, start_s, rss_before, rss_after);
    let cpu = Cpu::read(&args.broker_pids);
    let down_before: Vec<u64> = gateways.iter().map(down).collect();
    for s in 0..k {
        let delivered = confirm(&gateways, s, plc, w).await?;
        figures.confirmations.push(delivered);
    }
    figures.cpu(&cpu, &Cpu::read(&args.broker_pids), k);
    let receivers: Vec<_> = gateways
        .iter()
        .zip(&down_before)
        .filter(|(g, _)| !g.shape.source)
        .map(|(g, d)| (g.shape, down(g) - d, applied_by(w, g)))
        .collect();
    figures.receivers(&receivers);
    let joiner = start(fleet, args.plants, shape::joiner(k), false).await?;
    let keys: Vec<String> = gateways[..k].iter().map(|g| g.key.clone()).collect();
    let t = Instant::now();
    let site = joiner.site.clone();
    let all = w
        .until(t + DELIVERY_LIMIT, |w| {
            keys.iter()
                .all(|key| w.applied.contains_key(&(site.clone(), key.clone())))
        })
        .await;
    figures.joined(
        k,
        keys.iter()
            .filter(|key| w.applied.contains_key(&(site.clone(), (*key).clone())))
            .count(),
        all.then(|| t.elapsed().as_secs_f64() * 1000.0),
    );
    gateways.push(joiner);
    w.drain(Instant::now() + Duration::from_secs(10)).await;
    figures.misrouted = misrouted(&gateways, w);
    stop_all(gateways).await;
    Ok(figures)
}

/// Bytes a gateway received from the fleet broker so far (counted ones only).
fn down(g: &Gateway) -> u64 {
    g.bytes.as_ref().map_or(0, |b| b.read().1)
}

/// Packets a gateway applied.
fn applied_by(w: &Watch, g: &Gateway) -> usize {
    w.applied.keys().filter(|(site, _)| *site == g.site).count()
}

/// (site, source) pairs where a packet was heard that should not have been.
fn misrouted(gateways: &[Gateway], w: &Watch) -> usize {
    let by_key: std::collections::HashMap<&str, &Gateway> =
        gateways.iter().map(|g| (g.key.as_str(), g)).collect();
    let by_site: std::collections::HashMap<&str, &Gateway> =
        gateways.iter().map(|g| (g.site.as_str(), g)).collect();
    w.heard
        .iter()
        .filter(
            |(site, source)| match (by_site.get(site.as_str()), by_key.get(source.as_str())) {
                (Some(r), Some(s)) => !r.shape.hears(&s.shape),
                _ => true,
            },
        )
        .count()
}

/// Source `s` raises its warning and its engineer confirms it; waits until every plant that
/// must hear it applied its packet.
async fn confirm(
    gateways: &[Gateway],
    s: usize,
    plc: &wire::Plc,
    w: &mut Watch,
) -> Result<report::Delivery, String> {
    let source = &gateways[s];
    let up_before = source.bytes.as_ref().map_or(0, |b| b.read().0);
    plc.set(s, 90);
    let site = source.site.clone();
    if !w
        .until(Instant::now() + Duration::from_secs(30), |w| {
            w.alarm.contains_key(&site)
        })
        .await
    {
        return Err(format!("{site} raised no alarm at 90 °C"));
    }
    let body =
        serde_json::json!({"alarm_id": w.alarm[&site], "failure_mode": "bearing_outer_race"});
    let t0 = Instant::now();
    w.client
        .publish(
            format!("qis/{site}/cmd/confirm"),
            rumqttc::QoS::AtLeastOnce,
            false,
            body.to_string(),
        )
        .await
        .map_err(|e| format!("confirming at {site}: {e}"))?;
    let expected: Vec<(String, String)> = gateways
        .iter()
        .filter(|r| r.shape.hears(&source.shape))
        .map(|r| (r.site.clone(), source.key.clone()))
        .collect();
    w.until(t0 + DELIVERY_LIMIT, |w| {
        expected.iter().all(|e| w.applied.contains_key(e))
    })
    .await;
    let latencies_ms: Vec<f64> = expected
        .iter()
        .filter_map(|e| w.applied.get(e))
        .map(|t| t.saturating_duration_since(t0).as_secs_f64() * 1000.0)
        .collect();
    let mut reached: Vec<String> = w
        .applied
        .keys()
        .filter(|(_, key)| *key == source.key)
        .map(|(site, _)| site.clone())
        .collect();
    reached.sort();
    Ok(report::Delivery {
        source: site,
        expected: expected.len(),
        delivered: latencies_ms.len(),
        latencies_ms,
        reached,
        uplink_bytes_sent: source.bytes.as_ref().map(|b| b.read().0 - up_before),
    })
}

/// Starts plant `i` of `shape`; `counted` routes its fleet link through a counting proxy.
async fn start(fleet: &Fleet, i: usize, shape: Shape, counted: bool) -> Result<Gateway, String> {
    let site = format!("scale-{i}");
    let state_dir = fleet.root.join(&site);
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let key = crate::packet::keys::load_or_create(&state_dir).map_err(|e| e.to_string())?;
    // Plants spread over the fleet broker's nodes: each starts at its own, then the others.
    let mut uplink = fleet.uplink.clone();
    let nodes = uplink.len();
    uplink.rotate_left(i % nodes);
    let bytes = if counted {
        let (h, p) = &uplink[0];
        let target = tokio::net::lookup_host((h.as_str(), *p))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("cannot resolve {h}:{p}"))?;
        let (addr, bytes) = wire::proxy(target, fleet.cancel.clone())
            .await
            .map_err(|e| format!("a counting proxy: {e}"))?;
        uplink = vec![("127.0.0.1".to_string(), addr.port())];
        Some(bytes)
    } else {
        None
    };
    let links = shape::Links {
        site: &site,
        state_dir: &state_dir,
        mqtt: (&fleet.mqtt.0, fleet.mqtt.1),
        uplink: &uplink,
        plc: fleet.plc,
        register: i as u16,
        run: &fleet.run,
        join_requests: fleet.join_requests,
    };
    let text = shape::toml(&shape, &links);
    // Kept beside the plant's state, for inspection.
    let path = state_dir.join("qis-edge.toml");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = crate::config::parse_str(&text, &format!("{site}.toml"))
        .map_err(|e| format!("{site}: {e}"))?;
    let (stop, task) = crate::sim::spawn_gateway(config, site.clone());
    Ok(Gateway {
        site,
        shape,
        key: crate::packet::keys::public_hex(&key),
        bytes,
        stop,
        task,
    })
}

async fn stop_all(gateways: Vec<Gateway>) {
    let mut tasks = Vec::new();
    for g in gateways {
        let _ = g.stop.send(());
        tasks.push(g.task);
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks)).await;
}

/// CPU seconds of the broker's processes and of this one, at a moment.
pub struct Cpu {
    pub broker: Option<f64>,
    pub own: f64,
}

impl Cpu {
    fn read(pids: &[String]) -> Self {
        let broker = (!pids.is_empty()).then(|| pids.iter().filter_map(|p| wire::cpu_s(p)).sum());
        Self {
            broker,
            own: wire::cpu_s("self").unwrap_or(0.0),
        }
    }
}

/// Each plant holds about five descriptors (two MQTT links, a Modbus link, its database),
/// and the PLC and proxies more: lift the soft limit to the hard one where that is short.
fn raise_file_limit(plants: usize) {
    let want = (plants as u64 + 1) * 12 + 256;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
