module.exports = require("./lib/pulsar.js");
