// /cost/ page: draws the charts for the report the server computed (passed with json_script).
(function () {
  "use strict";
  const root = document.getElementById("cost-charts");
  const data = document.getElementById("cost-report");
  if (!root || !data || !window.LabbookCost) return;
  const profilesNode = document.getElementById("cost-profiles");
  const profiles = profilesNode ? JSON.parse(profilesNode.textContent) : [];
  window.LabbookCost.render(root, JSON.parse(data.textContent), { profiles: profiles, table: false });
})();
