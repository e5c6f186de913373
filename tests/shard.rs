//! Sharding targets across replicas: exactly one owner, balance, rendezvous stability and pinned
//! assignments (a change of the hash would reshuffle every deployment's targets).

use clap::Parser;
use inferprobe::cli::{Cli, Command};
use inferprobe::shard::{owner, Shard};

fn names() -> Vec<String> {
    (0..1000).map(|i| format!("target-{i}")).collect()
}

fn owners(names: &[String], count: u32) -> Vec<u32> {
    names
        .iter()
        .map(|name| {
            let owning: Vec<u32> = (0..count)
                .filter(|&index| {
                    Shard::new(index, count)
                        .map(|s| s.owns(name))
                        .unwrap_or(false)
                })
                .collect();
            assert_eq!(
                owning.len(),
                1,
                "{name} with {count} replicas is owned by {owning:?}"
            );
            assert_eq!(owning[0], owner(name, count));
            owning[0]
        })
        .collect()
}

#[test]
fn every_target_has_exactly_one_owner_and_shares_are_balanced() {
    let names = names();
    for count in 1..=7u32 {
        let owners = owners(&names, count);
        let mut per_replica = vec![0usize; count as usize];
        for o in &owners {
            per_replica[*o as usize] += 1;
        }
        let mean = names.len() as f64 / f64::from(count);
        for (replica, n) in per_replica.iter().enumerate() {
            let n = *n as f64;
            assert!(
                n >= mean * 0.7 && n <= mean * 1.3,
                "{count} replicas: replica {replica} owns {n} targets, mean {mean}: {per_replica:?}"
            );
        }
    }
}

#[test]
fn adding_a_replica_moves_targets_only_to_the_new_one() {
    let names = names();
    for count in 1..=7u32 {
        let before = owners(&names, count);
        let after = owners(&names, count + 1);
        let mut moved = 0;
        for ((name, b), a) in names.iter().zip(&before).zip(&after) {
            if a != b {
                assert_eq!(
                    *a, count,
                    "{name} moved from {b} to {a}, not to the new replica {count}"
                );
                moved += 1;
            }
        }
        // The new replica takes about 1/(count+1) of the targets.
        let expected = names.len() as f64 / f64::from(count + 1);
        assert!(
            (moved as f64) >= expected * 0.7 && (moved as f64) <= expected * 1.3,
            "{count} -> {} replicas moved {moved} targets, expected about {expected}",
            count + 1
        );
    }
}

#[test]
fn known_assignments_are_pinned() {
    // Changing these means every sharded deployment reshuffles its targets on upgrade. The values
    // were computed by a separate implementation of the same hash.
    let pinned: [(&str, [u32; 4]); 6] = [
        // name, owner with 2, 3, 4 and 5 replicas
        ("vllm-local", [0, 2, 2, 2]),
        ("llama-cpp", [1, 2, 2, 2]),
        ("azure-gpt-4o", [1, 1, 1, 4]),
        ("openai-mini", [1, 2, 3, 3]),
        ("anthropic-sonnet", [1, 2, 2, 4]),
        ("sim-chat", [1, 2, 2, 2]),
    ];
    for (name, want) in pinned {
        let got: Vec<u32> = (2..=5).map(|count| owner(name, count)).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn run_flags_default_to_one_unsharded_replica() {
    let cli = Cli::try_parse_from(["inferprobe", "run"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    assert_eq!((args.shard_index, args.shard_count), (0, 1));
    assert_eq!(
        Shard::new(args.shard_index, args.shard_count),
        Ok(Shard::single())
    );

    let cli =
        Cli::try_parse_from(["inferprobe", "run", "--shard.index=2", "--shard.count=3"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    assert_eq!(
        Shard::new(args.shard_index, args.shard_count),
        Ok(Shard { index: 2, count: 3 })
    );

    let cli =
        Cli::try_parse_from(["inferprobe", "run", "--shard.index=3", "--shard.count=3"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    assert_eq!(
        Shard::new(args.shard_index, args.shard_count),
        Err("--shard.index must be below --shard.count (3), got 3".to_string())
    );
    assert!(Cli::try_parse_from(["inferprobe", "run", "--shard.index=-1"]).is_err());
}
