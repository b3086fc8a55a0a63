import CRMIngest

await CRMIngestCommand.runMain()
