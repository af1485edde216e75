//! Mesh views: engines, providers and nodes.

use mesh_protocol::api::EngineInfo;
use mesh_protocol::wire::{NodeInfo, Provider};

use mesh_protocol::spec::short_version;

use super::{print_value, Format, Table};

pub fn print_engines(fmt: Format, engines: &[EngineInfo]) -> anyhow::Result<()> {
    if !fmt.is_table() {
        return print_value(fmt, &engines);
    }
    if engines.is_empty() {
        eprintln!(
            "no engines enabled on this node (start meshd with --engines, e.g. --engines mock)"
        );
        return Ok(());
    }
    let mut t = Table::new(&[
        "ENGINE",
        "HEALTHY",
        "VERSION",
        "KINDS",
        "CAPABILITIES",
        "DETAIL",
    ]);
    for e in engines {
        t.row(vec![
            e.name.clone(),
            if e.healthy { "yes".into() } else { "no".into() },
            e.version.clone().unwrap_or_else(|| "-".into()),
            e.kinds
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(","),
            e.capabilities.join(","),
            e.detail.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(crate) fn short_peer(peer: &str) -> String {
    if peer.len() > 16 {
        format!("…{}", &peer[peer.len() - 12..])
    } else {
        peer.to_string()
    }
}

fn until(at: u64) -> String {
    let now = mesh_runtime::now_millis();
    if at <= now {
        "expired".to_string()
    } else {
        format!("{}s", (at - now).div_ceil(1000))
    }
}

pub fn print_providers(fmt: Format, providers: &[Provider]) -> anyhow::Result<()> {
    if !fmt.is_table() {
        return print_value(fmt, &providers);
    }
    if providers.is_empty() {
        eprintln!("no providers");
        return Ok(());
    }
    let mut t = Table::new(&[
        "PEER",
        "ENGINE",
        "PHASE",
        "VERSION",
        "EXPIRES IN",
        "CAPABILITIES",
    ]);
    for p in providers {
        t.row(vec![
            short_peer(&p.peer_id),
            p.engine.clone(),
            p.phase.to_string(),
            short_version(&p.version).to_string(),
            until(p.expires_at),
            p.capabilities.join(","),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub fn print_nodes(fmt: Format, nodes: &[NodeInfo]) -> anyhow::Result<()> {
    if !fmt.is_table() {
        return print_value(fmt, &nodes);
    }
    let mut t = Table::new(&[
        "PEER",
        "STATUS",
        "ENGINES",
        "CPU FREE",
        "MEM FREE",
        "WORKLOADS",
        "TRUST",
        "ADDRESS",
    ]);
    for n in nodes {
        let engines: Vec<String> = n
            .engines
            .iter()
            .map(|e| {
                if e.healthy {
                    e.name.clone()
                } else {
                    format!("{}(down)", e.name)
                }
            })
            .collect();
        // Wide: the whole peer id and every address.
        let wide = fmt == Format::Wide;
        let peer = if wide {
            n.peer_id.clone()
        } else {
            short_peer(&n.peer_id)
        };
        t.row(vec![
            if n.local {
                format!("{peer} (this node)")
            } else {
                peer
            },
            if n.cordoned { "Cordoned" } else { "Ready" }.to_string(),
            if engines.is_empty() {
                "-".into()
            } else {
                engines.join(",")
            },
            format!("{}m/{}m", n.cpu_free_millis, n.cpu_millis),
            format!("{}Mi", n.memory_free_bytes >> 20),
            n.workloads.to_string(),
            match n.trust.as_str() {
                "" => "?".to_string(),
                "any" => "ANY KEY (--trust-any)".to_string(),
                t => t.to_string(),
            },
            if wide {
                n.addresses.join(",")
            } else {
                n.addresses.first().cloned().unwrap_or_default()
            },
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
