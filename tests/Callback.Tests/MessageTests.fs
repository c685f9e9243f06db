module Callback.Tests.MessageTests
