module Callback.Tests.LanguageTests
