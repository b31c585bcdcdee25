//! Rendezvous (highest random weight) hashing: which member owns which
//! partition. Every process computes the same answer from the same list of
//! members, with no coordinator; when a member joins or leaves, only the
//! partitions it wins or held move.

/// The member that owns `partition` among `members`: the one with the
/// highest weight `hash(member, partition)`. `None` without members.
///
/// ```
/// use sluice_nats::rendezvous::owner;
/// let members = ["a".to_string(), "b".to_string()];
/// let first = owner(&members, 3).unwrap();
/// // The same answer whatever the order of the list.
/// let reversed = ["b".to_string(), "a".to_string()];
/// assert_eq!(owner(&reversed, 3), Some(first));
/// ```
pub fn owner(members: &[String], partition: u32) -> Option<&str> {
    members
        .iter()
        .max_by_key(|m| (weight(m, partition), m.as_str()))
        .map(String::as_str)
}

/// The partitions of `0..partitions` that `member` owns among `members`.
pub fn owned(members: &[String], member: &str, partitions: u32) -> Vec<u32> {
    (0..partitions)
        .filter(|&p| owner(members, p) == Some(member))
        .collect()
}

/// FNV-1a of the member's name and the partition, then a 64-bit finaliser
/// (splitmix64) so that close names spread well.
fn weight(member: &str, partition: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in member.bytes().chain(partition.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i}")).collect()
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let members = names(3);
        let mut counts = [0usize; 3];
        for p in 0..64 {
            let o = owner(&members, p).unwrap();
            let i = members.iter().position(|m| m == o).unwrap();
            counts[i] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 64);
        // Spread: nobody gets almost nothing or almost everything.
        assert!(counts.iter().all(|&c| (10..=35).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_member_leaving_moves_only_its_partitions() {
        let all = names(4);
        let fewer: Vec<String> = all.iter().filter(|m| *m != "host-2").cloned().collect();
        for p in 0..128 {
            let before = owner(&all, p).unwrap();
            let after = owner(&fewer, p).unwrap();
            if before != "host-2" {
                assert_eq!(before, after, "partition {p} moved without reason");
            }
        }
    }

    #[test]
    fn no_members_no_owner() {
        assert_eq!(owner(&[], 0), None);
        assert!(owned(&[], "a", 4).is_empty());
    }
}
