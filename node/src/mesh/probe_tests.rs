//! A peer's suspicion against this node's own news of the suspect.

use std::time::Duration;

use mesh_protocol::Step;
use mesh_provider::Suspicion;

use crate::testing::TestNet;

fn suspicion(
    signer: &libp2p::PeerId,
    suspect: &libp2p::PeerId,
    heard_at: Option<u64>,
) -> Suspicion {
    let now = mesh_runtime::now_millis();
    Suspicion {
        peer_id: signer.to_string(),
        suspect: suspect.to_string(),
        issued_at: now,
        expires_at: now + 10_000,
        heard_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspicion_older_than_this_nodes_news_of_the_suspect_is_ignored() {
    let net = TestNet::start(3, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(30)).await;
    let mesh = &net.node(0).daemon().mesh;
    let signer = net.node(1).daemon().mesh.peer_id();
    let suspect = net.node(2).daemon().mesh.peer_id();
    let mine = mesh.peers().issued_at(&suspect).unwrap();
    let suspected = |events: &[String]| {
        events
            .iter()
            .filter(|m| {
                m.contains(&format!("peer {suspect} suspect")) && m.contains("found it dead")
            })
            .count()
    };

    // The signer's newest heartbeat of the suspect is older than node 0's: ignored.
    mesh.on_suspicion(&signer, &suspicion(&signer, &suspect, Some(mine - 1)));
    assert_eq!(
        mesh.liveness().status(&suspect),
        crate::mesh::liveness::Status::Alive
    );
    assert_eq!(suspected(&net.node(0).events(Step::Liveness)), 0);

    // Newer than node 0's (a heartbeat that reached the signer first): suspected and probed,
    // and the live suspect answers.
    // The false alarms are counted before the suspicion: its probe round runs at once, on
    // another task, and may end (and count) before the events below are read.
    let newer = mesh.peers().issued_at(&suspect).unwrap() + 60_000;
    let false_alarms = mesh.health().false_alarms();
    mesh.on_suspicion(&signer, &suspicion(&signer, &suspect, Some(newer)));
    assert_eq!(suspected(&net.node(0).events(Step::Liveness)), 1);
    crate::testing::wait_until("the suspect to answer", Duration::from_secs(10), || async {
        // A suspicion that ended with the peer alive counts against node 0's own judgement.
        (mesh.liveness().status(&suspect) == crate::mesh::liveness::Status::Alive
            && mesh.health().false_alarms() > false_alarms)
            .then_some(())
    })
    .await;
    assert_eq!(mesh.health().false_alarms(), false_alarms + 1);

    // A suspicion that does not say (`heard_at` absent) is acted on, as before.
    mesh.on_suspicion(&signer, &suspicion(&signer, &suspect, None));
    assert_eq!(suspected(&net.node(0).events(Step::Liveness)), 2);
    net.stop().await;
}

#[test]
fn heard_at_is_left_out_when_unknown_and_read_as_unknown_when_absent() {
    let s = suspicion(&libp2p::PeerId::random(), &libp2p::PeerId::random(), None);
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("heard_at"), "{json}");
    let back: Suspicion = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let with = Suspicion {
        heard_at: Some(7),
        ..s
    };
    let back: Suspicion = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
    assert_eq!(back.heard_at, Some(7));
}
