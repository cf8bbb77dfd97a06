//! One bridge-ADD-shaped sequence through libcni's synchronous client, then exit:
//! create a veth pair, look up the peer, set it up, add an address, delete the pair.
use libcni::netlink::{LinkId, NewLinkKind, Netlink, NewLink};

fn main() {
    let i = std::env::args().nth(1).expect("iteration number");
    let mut nl = Netlink::open().expect("netlink socket");
    let mut veth = NewLink::new(format!("vh{i}"), NewLinkKind::Veth { peer: Box::new(NewLink::peer(format!("vc{i}"))) });
    veth.up = true;
    nl.create_link(&veth).expect("create veth");
    let peer = nl.require_link(&LinkId::Name(&format!("vc{i}"))).expect("peer");
    nl.change_link(peer.index).up().apply().expect("up");
    nl.add_address(peer.index, "10.200.0.1/24".parse().unwrap()).expect("address");
    nl.delete_link(peer.index, "peer").expect("delete");
}
