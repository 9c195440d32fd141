import MLStoreCLI
MLStoreMain.main()
