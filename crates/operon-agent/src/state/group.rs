//! `group`: present (with a gid) or absent, through `groupadd`, `groupmod
//! -g` and `groupdel`; `/etc/group` is read with [`super::user::parse_group`].

use operon_state::document::{GroupSpec, Presence};

use super::exec;
use super::user;
use super::{Found, Mode};

async fn tool(program: &str, args: &[&str]) -> Result<(), String> {
    let out = exec::tool(program, args, &[]).await?;
    if out.success() {
        Ok(())
    } else {
        Err(out.failure(program))
    }
}

pub async fn ensure(spec: &GroupSpec, mode: Mode) -> Result<Found, String> {
    let name = spec.name.as_str();
    let current = user::groups()?.into_iter().find(|g| g.name == name);
    let apply = mode == Mode::Apply;
    match (spec.state, current) {
        (Presence::Absent, None) => Ok(Found::compliant()),
        (Presence::Absent, Some(_)) => {
            if apply {
                tool("groupdel", &[name]).await?;
            }
            Ok(Found::change("removed"))
        }
        (Presence::Present, None) => {
            if apply {
                let gid = spec.gid.map(|g| g.to_string());
                let mut args = Vec::new();
                if let Some(gid) = &gid {
                    args.extend(["-g", gid.as_str()]);
                }
                args.push(name);
                tool("groupadd", &args).await?;
            }
            Ok(Found::change("created"))
        }
        (Presence::Present, Some(entry)) => match spec.gid {
            Some(gid) if gid != entry.gid => {
                if apply {
                    tool("groupmod", &["-g", &gid.to_string(), name]).await?;
                }
                Ok(Found::change(format!("gid {} -> {gid}", entry.gid)))
            }
            _ => Ok(Found::compliant()),
        },
    }
}
