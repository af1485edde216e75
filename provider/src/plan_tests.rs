#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;

fn peers(n: usize) -> Vec<PeerId> {
    let mut p: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
    p.sort_by_key(|p| p.to_bytes());
    p
}

fn capable(peer: PeerId, cpu: u64) -> Candidate {
    Candidate {
        peer,
        is_self: false,
        engine: Ok("mock".into()),
        cpu_free_millis: cpu,
        memory_free_bytes: 1 << 30,
    }
}

fn holder(slot: u32, peer: PeerId, version: &str) -> Holder {
    Holder {
        slot,
        peer,
        version: version.into(),
        running: true,
    }
}

const NONE: ResourceAmounts = ResourceAmounts {
    cpu_millis: None,
    memory_bytes: None,
};

#[test]
fn holders_of_the_wanted_version_are_kept_and_nothing_else_happens() {
    let p = peers(3);
    let cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    let holders = [holder(0, p[0], "v1"), holder(1, p[2], "v1")];
    let plan = plan(
        "default/web",
        Replicas::Count(2),
        "v1",
        NONE,
        &cands,
        &holders,
    );
    assert_eq!(plan.keep, vec![(0, p[0]), (1, p[2])]);
    assert!(plan.is_noop(), "{plan:?}");
}

#[test]
fn empty_slots_go_to_nodes_without_a_slot_best_ranked_first() {
    let p = peers(4);
    let cands = vec![
        capable(p[0], 1000),
        capable(p[1], 500),
        capable(p[2], 4000),
        capable(p[3], 2000),
    ];
    let plan = plan(
        "default/web",
        Replicas::Count(3),
        "v1",
        NONE,
        &cands,
        &[holder(1, p[2], "v1")],
    );
    assert_eq!(plan.keep, vec![(1, p[2])]);
    // p[2] holds slot 1 already: the most free CPU among the rest first.
    assert_eq!(
        plan.add,
        vec![(0, p[3], "mock".to_string()), (2, p[0], "mock".to_string())]
    );
    assert!(plan.unplaced.is_empty());
}

#[test]
fn a_new_version_updates_holders_in_place() {
    let p = peers(2);
    let cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    let holders = [holder(0, p[0], "v1"), holder(1, p[1], "v1")];
    let plan = plan(
        "default/web",
        Replicas::Count(2),
        "v2",
        NONE,
        &cands,
        &holders,
    );
    assert_eq!(plan.update, vec![(0, p[0]), (1, p[1])]);
    assert!(plan.add.is_empty() && plan.retire.is_empty());
}

#[test]
fn a_scale_down_retires_the_highest_slots() {
    let p = peers(3);
    let cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    let holders = [
        holder(0, p[0], "v1"),
        holder(1, p[1], "v1"),
        holder(2, p[2], "v1"),
    ];
    let plan = plan(
        "default/web",
        Replicas::Count(1),
        "v1",
        NONE,
        &cands,
        &holders,
    );
    assert_eq!(plan.keep, vec![(0, p[0])]);
    assert_eq!(plan.retire, vec![(2, p[2]), (1, p[1])]);
    assert!(plan.add.is_empty());
}

#[test]
fn a_slot_held_twice_keeps_one_holder() {
    let p = peers(2);
    let cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    let holders = [holder(0, p[1], "v1"), holder(0, p[0], "v1")];
    let plan = plan(
        "default/web",
        Replicas::Count(1),
        "v1",
        NONE,
        &cands,
        &holders,
    );
    let (high, low) = if rendezvous("default/web", 0, &p[0]) > rendezvous("default/web", 0, &p[1]) {
        (p[0], p[1])
    } else {
        (p[1], p[0])
    };
    assert_eq!(plan.keep, vec![(0, high)]);
    assert_eq!(plan.retire, vec![(0, low)]);
    // Whatever order the holders are heard in.
    let reversed = [holders[1].clone(), holders[0].clone()];
    let again = super::plan(
        "default/web",
        Replicas::Count(1),
        "v1",
        NONE,
        &cands,
        &reversed,
    );
    assert_eq!((again.keep, again.retire), (plan.keep, plan.retire));
}

#[test]
fn a_running_holder_outranks_a_failed_one_for_a_slot_held_twice() {
    let p = peers(2);
    let cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    for (failed, running) in [(0, 1), (1, 0)] {
        let mut down = holder(0, p[failed], "v1");
        down.running = false;
        let holders = [down, holder(0, p[running], "v1")];
        let plan = plan(
            "default/web",
            Replicas::Count(1),
            "v1",
            NONE,
            &cands,
            &holders,
        );
        assert_eq!(plan.keep, vec![(0, p[running])]);
        assert_eq!(plan.retire, vec![(0, p[failed])]);
    }
}

#[test]
fn rendezvous_ranks_differ_by_slot_and_workload() {
    let p = peers(8);
    let top = |w: &str, slot: u32| *p.iter().max_by_key(|q| rendezvous(w, slot, q)).unwrap();
    let tops: HashSet<PeerId> = (0..16).map(|s| top("default/web", s)).collect();
    assert!(tops.len() > 1, "one peer ranks first for every slot");
    assert_eq!(top("default/web", 3), top("default/web", 3));
}

#[test]
fn a_daemonset_takes_every_capable_node_and_numbers_new_slots_from_the_lowest_free() {
    let p = peers(4);
    let mut cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    cands[3].engine = Err("no engine runs Pod".into());
    let plan = plan(
        "default/web",
        Replicas::EveryNode,
        "v1",
        NONE,
        &cands,
        &[holder(1, p[0], "v1")],
    );
    assert_eq!(plan.keep, vec![(1, p[0])]);
    let slots: Vec<u32> = plan.add.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(slots, vec![0, 2]);
    let nodes: HashSet<PeerId> = plan.add.iter().map(|(_, p, _)| *p).collect();
    assert_eq!(nodes, HashSet::from([p[1], p[2]]));
    assert!(plan.unplaced.is_empty());
    assert!(plan.notes.iter().any(|n| n.contains("no engine runs Pod")));
}

#[test]
fn without_capacity_slots_stay_unplaced_with_the_reason() {
    let p = peers(2);
    let cands = vec![capable(p[0], 100), capable(p[1], 100)];
    let needs = ResourceAmounts {
        cpu_millis: Some(500),
        memory_bytes: None,
    };
    let plan = plan("default/web", Replicas::Count(2), "v1", needs, &cands, &[]);
    assert!(plan.add.is_empty());
    assert_eq!(plan.unplaced, vec![0, 1]);
    assert!(
        plan.notes[0].contains("placed 0 of 2 replicas"),
        "{:?}",
        plan.notes
    );
    assert!(plan.notes.iter().any(|n| n.contains("needs 500m CPU")));
}

#[test]
fn a_failed_holder_is_retried_in_place_not_placed_again_elsewhere() {
    let p = peers(3);
    let cands: Vec<Candidate> = p.iter().map(|p| capable(*p, 1000)).collect();
    let mut failed = holder(0, p[1], "v1");
    failed.running = false;
    let plan = plan(
        "default/web",
        Replicas::Count(1),
        "v1",
        NONE,
        &cands,
        &[failed],
    );
    assert_eq!(plan.update, vec![(0, p[1])]);
    assert!(plan.add.is_empty(), "{plan:?}");
}
