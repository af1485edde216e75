//! Shell words, port specs and short volume specs.

use super::*;

#[test]
fn shell_words_follow_posix_quoting() {
    let cases: [(&str, &[&str]); 7] = [
        ("sleep infinity", &["sleep", "infinity"]),
        ("  npm   run start-watch ", &["npm", "run", "start-watch"]),
        (
            "logstash -f /a/b.config",
            &["logstash", "-f", "/a/b.config"],
        ),
        ("sh -c 'echo $HOME; ls'", &["sh", "-c", "echo $HOME; ls"]),
        (r#"echo "a \"b\" \$c" d\ e"#, &["echo", "a \"b\" $c", "d e"]),
        ("''", &[""]),
        ("", &[]),
    ];
    for (input, want) in cases {
        assert_eq!(shell_words(input).expect("splits"), want, "{input}");
    }
    assert!(shell_words("echo 'open").is_err());
    assert!(shell_words("echo \"open").is_err());
}

fn one_port(spec: &str) -> Port {
    let mut ports = port_spec(spec).expect("valid");
    assert_eq!(ports.len(), 1, "{spec}");
    ports.remove(0)
}

#[test]
fn port_specs() {
    let p = one_port("80");
    assert_eq!(
        (p.container_port, p.host_port, p.protocol),
        (80, None, PortProtocol::Tcp)
    );
    let p = one_port("8080:80");
    assert_eq!((p.container_port, p.host_port), (80, Some(8080)));
    let p = one_port("127.0.0.1:8080:80");
    assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
    let p = one_port("53:53/udp");
    assert_eq!(p.protocol, PortProtocol::Udp);
    let p = one_port("[::1]:8080:80/tcp");
    assert_eq!(
        (p.host_ip.as_deref(), p.host_port),
        (Some("::1"), Some(8080))
    );
    let p = one_port("127.0.0.1::80");
    assert_eq!((p.host_port, p.container_port), (None, 80));
    let range = port_spec("8000-8002:9000-9002").expect("range");
    let pairs: Vec<_> = range
        .iter()
        .map(|p| (p.host_port, p.container_port))
        .collect();
    assert_eq!(
        pairs,
        [(Some(8000), 9000), (Some(8001), 9001), (Some(8002), 9002)]
    );
    for bad in [
        "0",
        "70000",
        "80/icmp",
        "a:b",
        "8000-8001:80",
        "1:2:3:4",
        "9-1",
        "1-2000",
    ] {
        assert!(port_spec(bad).is_err(), "{bad}");
    }
}

#[test]
fn volume_specs() {
    assert_eq!(
        volume_spec("/code/node_modules"),
        Ok(ShortVolume::Anonymous {
            target: "/code/node_modules".into()
        })
    );
    assert_eq!(
        volume_spec("./backend/src:/code/src:ro"),
        Ok(ShortVolume::Bind {
            source: "./backend/src".into(),
            target: "/code/src".into(),
            read_only: true
        })
    );
    assert_eq!(
        volume_spec("db-data:/var/lib/mysql"),
        Ok(ShortVolume::Named {
            name: "db-data".into(),
            target: "/var/lib/mysql".into(),
            read_only: false
        })
    );
    assert_eq!(
        volume_spec("/etc/pihole/:/etc/pihole/:rw,z"),
        Ok(ShortVolume::Bind {
            source: "/etc/pihole/".into(),
            target: "/etc/pihole/".into(),
            read_only: false
        })
    );
    let empty = volume_spec(":/media/").expect_err("unset variable");
    assert!(empty.contains("empty section"), "{empty}");
    assert!(volume_spec("data:relative").is_err());
    assert!(volume_spec("a:/b:bogus").is_err());
    assert!(volume_spec("a:/b:ro:x").is_err());
}
