pytest_plugins = ["guanxi_shared.testing"]
