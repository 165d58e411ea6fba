//! The live site a GLUE publication is compared with: the user's groups
//! (`one.user.info`, `one.group.info`) and the VM templates
//! (`one.templatepool.info`), which are what cloud-info-provider's OpenNebula
//! provider publishes as images. OpenNebula has no flavors.

use super::OpenNebula;
use crate::backend::{Named, SiteCatalog, SiteView};
use crate::clients::opennebula::{self as one, child, children, int, text_at, Doc};
use crate::fail::Fail;

/// Pool filter: everything the user may use (oned applies its ACLs).
const ALL_VISIBLE: i64 = -2;
/// Bound on the secondary groups resolved by name, one call each.
const MAX_GROUPS: usize = 50;

impl OpenNebula {
    async fn groups(&self) -> Result<Vec<Named>, Fail> {
        let xml = self.one.call_xml("one.user.info", vec![int(-1)]).await?;
        let doc = Doc::new(xml);
        let d = doc.parse("one.user.info")?;
        let u = d.root_element();
        let primary = Named {
            id: text_at(u, "GID").unwrap_or("").to_string(),
            name: text_at(u, "GNAME").unwrap_or("").to_string(),
        };
        let others: Vec<String> = child(u, "GROUPS")
            .map(|g| {
                children(g, "ID")
                    .filter_map(|i| i.text())
                    .map(|t| t.trim().to_string())
                    .filter(|t| *t != primary.id)
                    .collect()
            })
            .unwrap_or_default();
        let mut out = vec![primary];
        for id in others.into_iter().take(MAX_GROUPS) {
            let xml = self
                .one
                .call_xml("one.group.info", vec![one::id_arg(&id)?])
                .await?;
            let doc = Doc::new(xml);
            let d = doc.parse("one.group.info")?;
            let name = text_at(d.root_element(), "NAME").unwrap_or("").to_string();
            out.push(Named { id, name });
        }
        Ok(out)
    }

    async fn templates(&self) -> Result<Vec<Named>, Fail> {
        let xml = self
            .one
            .call_xml(
                "one.templatepool.info",
                vec![int(ALL_VISIBLE), int(-1), int(-1)],
            )
            .await?;
        let doc = Doc::new(xml);
        let d = doc.parse("one.templatepool.info")?;
        Ok(children(d.root_element(), "VMTEMPLATE")
            .map(|t| Named {
                id: text_at(t, "ID").unwrap_or("").to_string(),
                name: text_at(t, "NAME").unwrap_or("").to_string(),
            })
            .collect())
    }
}

impl SiteCatalog for OpenNebula {
    async fn site_view(&self) -> Result<SiteView, Fail> {
        Ok(SiteView {
            projects: self.groups().await?,
            images: self.templates().await?,
            flavors: None,
            project_word: "group",
            image_word: "VM template",
        })
    }
}
