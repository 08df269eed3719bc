// What /status says about the process itself: enough to see a leak (memory or handles
// that grow and never come back) without attaching a debugger.
export function processStats() {
  const memory = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    activeResources: resources,
  };
}
