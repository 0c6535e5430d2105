//! How connections map to users and conversations: one conversation for `idle` and `fanout`,
//! C conversations with their own users for `throughput`.

/// Which user each connection signs in as, and the conversations (groups of users).
#[derive(Debug, PartialEq)]
pub struct Layout {
    pub users: usize,
    /// Per conversation, the indices of its users.
    pub groups: Vec<Vec<usize>>,
    /// Per connection, `(user, group)`.
    pub conns: Vec<(usize, usize)>,
}

/// N connections spread round-robin over `users` users, all in one conversation.
pub fn layout_single(n: usize, users: usize) -> Layout {
    let users = users.clamp(1, n.max(1));
    Layout {
        users,
        groups: vec![(0..users).collect()],
        conns: (0..n).map(|i| (i % users, 0)).collect(),
    }
}

/// C conversations with K connections each; every conversation has its own users (so that a
/// client receives only its conversation's messages), `users_total / C` of them (1 to K).
pub fn layout_multi(c: usize, k: usize, users_total: usize) -> Layout {
    let per = (users_total / c.max(1)).clamp(1, k.max(1));
    let groups: Vec<Vec<usize>> = (0..c).map(|g| (g * per..(g + 1) * per).collect()).collect();
    let conns = (0..c)
        .flat_map(|g| (0..k).map(move |j| (g * per + j % per, g)))
        .collect();
    Layout {
        users: c * per,
        groups,
        conns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_layout_round_robin() {
        let l = layout_single(5, 2);
        assert_eq!(l.users, 2);
        assert_eq!(l.groups, vec![vec![0, 1]]);
        assert_eq!(l.conns, vec![(0, 0), (1, 0), (0, 0), (1, 0), (0, 0)]);
        // Never more users than connections.
        assert_eq!(layout_single(3, 200).users, 3);
    }

    #[test]
    fn multi_layout_disjoint_users() {
        let l = layout_multi(3, 4, 6);
        assert_eq!(l.users, 6);
        assert_eq!(l.groups, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        assert_eq!(l.conns.len(), 12);
        assert_eq!(&l.conns[..4], &[(0, 0), (1, 0), (0, 0), (1, 0)]);
        assert_eq!(&l.conns[8..], &[(4, 2), (5, 2), (4, 2), (5, 2)]);
        // More conversations than users: one user each.
        let l = layout_multi(10, 3, 4);
        assert_eq!(l.users, 10);
        // Never more users per conversation than clients.
        let l = layout_multi(2, 3, 200);
        assert_eq!(l.users, 6);
    }
}
