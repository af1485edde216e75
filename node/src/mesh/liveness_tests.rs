use super::*;

const S: Duration = Duration::from_secs(10);

fn peer() -> PeerId {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
}

#[test]
fn any_answer_clears_a_suspect() {
    use Answer::*;
    assert_eq!(judge(Alive, &[], S, S), Verdict::Alive);
    assert_eq!(judge(Silent, &[Silent, Alive], S, S), Verdict::Alive);
    assert_eq!(
        judge(Unreachable, &[Alive, Unreachable], S, S),
        Verdict::Alive
    );
}

#[test]
fn refused_by_every_prober_is_dead_at_once_but_silence_waits_for_the_suspicion_timeout() {
    use Answer::*;
    let early = Duration::from_millis(100);
    assert_eq!(
        judge(Unreachable, &[Unreachable, Unreachable], early, S),
        Verdict::Dead
    );
    assert_eq!(judge(Unreachable, &[], early, S), Verdict::Dead);
    // A helper that heard nothing may be slow itself: not proof of death.
    assert_eq!(
        judge(Unreachable, &[Unreachable, Silent], early, S),
        Verdict::StillSuspect
    );
    assert_eq!(
        judge(Silent, &[Silent, Silent], early, S),
        Verdict::StillSuspect
    );
    assert_eq!(judge(Silent, &[Silent, Silent], S, S), Verdict::Dead);
}

#[test]
fn a_suspect_is_probed_once_at_a_time_and_confirmed_or_cleared() {
    let table = Liveness::default();
    let p = peer();
    assert_eq!(table.status(&p), Status::Alive);
    assert!(table.suspect(p, 1_000));
    assert!(!table.suspect(p, 1_001), "already suspect");
    assert_eq!(table.take_probes().len(), 1);
    assert!(table.take_probes().is_empty(), "a round is running");
    table.probed(&p);
    assert_eq!(table.take_probes().len(), 1);
    assert!(table.confirm(&p, 2_000));
    assert!(table.is_dead(&p));
    assert!(!table.confirm(&p, 2_001), "only a suspect is confirmed");
    assert!(table.take_probes().is_empty(), "the dead are not probed");
    // An old heartbeat (signed before the death) does not raise it; a new one does.
    assert_eq!(table.heard(&p, 1_500), None);
    assert!(table.is_dead(&p));
    assert_eq!(table.heard(&p, 2_500), Some(Status::Dead));
    assert_eq!(table.status(&p), Status::Alive);
}

#[test]
fn an_answer_clears_a_suspect_and_says_what_it_was() {
    let table = Liveness::default();
    let p = peer();
    assert_eq!(table.answered(&p), None, "never suspected");
    table.suspect(p, 1);
    assert_eq!(table.answered(&p), Some(Status::Suspect));
    assert_eq!(table.status(&p), Status::Alive);
}

#[test]
fn the_long_dead_are_forgotten() {
    let table = Liveness::default();
    let p = peer();
    table.suspect(p, 1);
    table.confirm(&p, 2);
    table.prune(Duration::from_secs(60));
    assert!(table.is_dead(&p));
    table.prune(Duration::ZERO);
    assert_eq!(table.status(&p), Status::Alive);
}
